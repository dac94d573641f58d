"""The pilot registry: sites and their meter trees, as value objects.

The registry is declared in YAML (see ``simulators/sites/*.yaml``); :func:`parse_registry`
validates the already-parsed document and names the offending entry and field of every error.
Reading files is left to the caller (``nzc.registry.load_registry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carbon.units import CANONICAL_UNIT, Carrier, UnitError, to_canonical_factor

SITE_TYPES = frozenset(
    {
        "region",
        "park",
        "enterprise",
        "community",
        "public_institution",
        "campus",
        "commercial",
        "scenic_area",
        "building",
        "transport",
        "town",
    }
)


class RegistryError(ValueError):
    """An invalid registry entry; the message names source, entry and field."""


DEVICE_FORMATS = frozenset(
    {"nzc", "tasmota", "shelly_gen1", "shelly_gen2", "zigbee2mqtt", "neuron", "sparkplug"}
)


@dataclass(frozen=True)
class DeviceSource:
    """Which device (and which of its channels) reports a meter, in which gateway format.

    ``device`` is the identity the format carries (Tasmota topic, Shelly id, Zigbee2MQTT
    friendly name, Neuron ``node/group`` plus DL/T 645 address, Sparkplug
    ``group/node/device``); ``channel`` picks one value where a device reports several
    (a phase, an ``em1data`` index, a tag), ``None`` for the device's single register.
    """

    format: str
    device: str
    channel: str | None = None


@dataclass(frozen=True)
class Meter:
    """One meter.

    ``register_max`` is the register width in the meter's own ``unit`` (the value at which the
    counter rolls over to zero); ``max_rate_per_h`` is the physical maximum rate in ``unit``
    per hour (kW for a kWh register): a faster apparent rate is a spike.
    """

    meter_id: str
    site_id: str
    carrier: Carrier
    unit: str
    gateway_id: str
    parent_id: str | None
    group: str | None
    register_max: float
    max_rate_per_h: float
    source: DeviceSource | None = None

    @property
    def canonical_unit(self) -> str:
        """Unit of every energy value this meter produces inside the pipeline."""
        return CANONICAL_UNIT[self.carrier]

    @property
    def to_canonical(self) -> float:
        """Multiplier from the meter's unit to its carrier's canonical unit."""
        return to_canonical_factor(self.carrier, self.unit)


@dataclass(frozen=True)
class Site:
    """One pilot zone with a boundary; ``province`` selects the grid factor."""

    site_id: str
    name: str
    site_type: str
    province: str
    city: str
    baseline_year: int
    timezone: str


@dataclass(frozen=True)
class Registry:
    """All sites and meters known to a deployment."""

    sites: Mapping[str, Site]
    meters: Mapping[str, Meter]

    def meter(self, meter_id: str) -> Meter | None:
        """The meter with this id, or ``None`` when it is not registered."""
        return self.meters.get(meter_id)

    def meter_for_device(self, fmt: str, device: str, channel: str | None = None) -> Meter | None:
        """The meter that ``device`` (and ``channel``) of gateway format ``fmt`` reports, or
        ``None`` when the installer has not mapped it yet."""
        index = self.__dict__.get("_device_index")
        if index is None:
            index = {
                (m.source.format, m.source.device, m.source.channel): m
                for m in self.meters.values()
                if m.source is not None
            }
            object.__setattr__(self, "_device_index", index)
        return index.get((fmt, device, channel))


def _req(entry: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    if key not in entry:
        raise RegistryError(f"{where}: field {key!r} is required")
    value = entry[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RegistryError(
            f"{where}: field {key!r} must be {kind.__name__}, got {value!r}"
        )
    return value


def _parse_source(raw: Any, where: str) -> DeviceSource | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: field 'source' must be a mapping")
    fmt = _req(raw, "format", f"{where}: source", str)
    if fmt not in DEVICE_FORMATS:
        raise RegistryError(
            f"{where}: source format {fmt!r}; accepted: {', '.join(sorted(DEVICE_FORMATS))}"
        )
    channel = raw.get("channel")
    return DeviceSource(fmt, _req(raw, "device", f"{where}: source", str),
                        None if channel is None else str(channel))


def parse_registry(doc: Any, source: str = "<registry>") -> Registry:
    """Validate a parsed registry document and build a :class:`Registry`.

    ``doc`` is ``{"sites": [{"id", "name", "type", "province", "city", "baseline_year",
    "meters": [{"id", "carrier", "unit", "gateway", "parent"?, "group"?, "register_max",
    "max_rate_per_h"}]}]}``.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("sites"), list):
        raise RegistryError(f"{source}: top level must be a mapping with a 'sites' list")
    sites: dict[str, Site] = {}
    meters: dict[str, Meter] = {}
    for i, s in enumerate(doc["sites"]):
        where = f"{source}: sites[{i}]"
        if not isinstance(s, Mapping):
            raise RegistryError(f"{where}: must be a mapping")
        site_id = _req(s, "id", where, str)
        where = f"{source}: site {site_id!r}"
        if site_id in sites:
            raise RegistryError(f"{where}: duplicate site id")
        site_type = _req(s, "type", where, str)
        if site_type not in SITE_TYPES:
            raise RegistryError(
                f"{where}: field 'type' is {site_type!r}; accepted: {', '.join(sorted(SITE_TYPES))}"
            )
        sites[site_id] = Site(
            site_id=site_id,
            name=_req(s, "name", where, str),
            site_type=site_type,
            province=_req(s, "province", where, str).lower(),
            city=_req(s, "city", where, str),
            baseline_year=_req(s, "baseline_year", where, int),
            timezone=str(s.get("timezone", "Asia/Shanghai")),
        )
        for j, m in enumerate(s.get("meters") or []):
            mwhere = f"{where}: meters[{j}]"
            if not isinstance(m, Mapping):
                raise RegistryError(f"{mwhere}: must be a mapping")
            meter_id = _req(m, "id", mwhere, str)
            mwhere = f"{where}: meter {meter_id!r}"
            if meter_id in meters:
                raise RegistryError(f"{mwhere}: duplicate meter id")
            raw_carrier = _req(m, "carrier", mwhere, str)
            try:
                carrier = Carrier(raw_carrier)
            except ValueError:
                accepted = ", ".join(c.value for c in Carrier)
                raise RegistryError(
                    f"{mwhere}: field 'carrier' is {raw_carrier!r}; accepted: {accepted}"
                ) from None
            unit = _req(m, "unit", mwhere, str)
            try:
                to_canonical_factor(carrier, unit)
            except UnitError as exc:
                raise RegistryError(f"{mwhere}: field 'unit': {exc}") from None
            register_max = _req(m, "register_max", mwhere, float)
            max_rate = _req(m, "max_rate_per_h", mwhere, float)
            if register_max <= 0 or max_rate <= 0:
                raise RegistryError(f"{mwhere}: register_max and max_rate_per_h must be > 0")
            parent = m.get("parent")
            dev_source = _parse_source(m.get("source"), mwhere)
            meters[meter_id] = Meter(
                meter_id=meter_id,
                site_id=site_id,
                carrier=carrier,
                unit=unit,
                gateway_id=_req(m, "gateway", mwhere, str),
                parent_id=str(parent) if parent is not None else None,
                group=str(m["group"]) if m.get("group") is not None else None,
                register_max=register_max,
                max_rate_per_h=max_rate,
                source=dev_source,
            )
    for meter in meters.values():
        if meter.parent_id is not None and meter.parent_id not in meters:
            raise RegistryError(
                f"{source}: meter {meter.meter_id!r}: field 'parent' names unknown meter "
                f"{meter.parent_id!r}"
            )
    return Registry(sites=sites, meters=meters)
