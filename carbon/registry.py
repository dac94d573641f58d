"""The pilot registry: sites and their meter trees, as value objects.

The registry is declared in YAML (see ``simulators/sites/*.yaml``); :func:`parse_registry`
validates the already-parsed document and names the offending entry and field of every error.
Reading files is left to the caller (``core.registry_yaml.load_registry``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    max_gap_s: float | None = None

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
    construction_start: date | None = None
    construction_end: date | None = None
    boundary: str | None = None
    factor_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


DENOMINATOR_KINDS: dict[str, str] = {
    # kind: unit (DOMAIN.md section 1: intensity indicators divide by these)
    "population": "person",
    "floor_area": "m2",
    "output_value": "CNY 10^4",
    "value_added": "CNY 10^4",
    "visitors": "person",
    "product_output": "t",
}

INSTRUMENT_KINDS: dict[str, str] = {
    # kind: unit. Green power and certificates cover grid kWh (market-based Scope 2);
    # sinks and purchased reductions are subtracted for net emissions (Guangdong guide).
    "green_power": "MWh",
    "green_certificate": "MWh",
    "carbon_sink": "tCO2",
    "ccer": "tCO2",
    "phcer": "tCO2",
    "chengdu_reduction": "tCO2",
}


@dataclass(frozen=True)
class Denominator:
    """A monthly value entered by people (population, floor area, output value, ...)."""

    site_id: str
    kind: str
    month: date
    value: float
    unit: str
    source: str | None


@dataclass(frozen=True)
class Instrument:
    """A contract or certificate: green power purchase, green certificate, carbon sink, or a
    purchased voluntary reduction (CCER, Guangdong PHCER, Chengdu reductions).

    ``quantity`` is in ``unit`` (MWh or tCO2) and applies to the months
    ``period_start``..``period_end`` (first days of months, inclusive). A green certificate
    counts only when ``retired`` and only once, for the site that holds it.
    """

    instrument_id: str
    site_id: str
    kind: str
    quantity: float
    unit: str
    period_start: date
    period_end: date
    vintage: int | None
    retired: bool
    registry: str | None


@dataclass(frozen=True)
class Registry:
    """All sites and meters known to a deployment, with people-entered denominators and
    contracts."""

    sites: Mapping[str, Site]
    meters: Mapping[str, Meter]
    denominators: tuple[Denominator, ...] = ()
    instruments: tuple[Instrument, ...] = ()

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


LINE_KEY = "__line__"

SOURCE_FIELDS = frozenset({"format", "device", "channel"})

SITE_FIELDS = frozenset({
    "id", "name", "type", "province", "city", "baseline_year", "timezone", "construction_start",
    "construction_end", "boundary", "factor_overrides", "meters", "denominators",
    "instruments", "targets", "description",
})
METER_FIELDS = frozenset({
    "id", "carrier", "unit", "gateway", "parent", "group", "register_max", "max_rate_per_h",
    "source", "max_gap_s", "description",
})


def _at(entry: Any, where: str) -> str:
    """``where`` plus the YAML line of ``entry`` when the loader recorded it."""
    if isinstance(entry, Mapping) and LINE_KEY in entry:
        return f"{where} (line {entry[LINE_KEY]})"
    return where


def _known(entry: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(k for k in entry if k not in allowed and k != LINE_KEY)
    if unknown:
        raise RegistryError(
            f"{where}: unknown field {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}"
        )


def _month(raw: Any, where: str, key: str) -> date:
    text = str(raw)
    try:
        year, month = (int(p) for p in text.split("-")[:2])
        return date(year, month, 1)
    except ValueError:
        raise RegistryError(f"{where}: field {key!r} is {raw!r}; expected YYYY-MM") from None


def _date(raw: Any, where: str, key: str) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise RegistryError(f"{where}: field {key!r} is {raw!r}; expected YYYY-MM-DD") from None


def _req(entry: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
    if key not in entry:
        raise RegistryError(f"{where}: field {key!r} is required")
    value = entry[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is float and isinstance(value, str):
        # YAML 1.1 reads 1e6 (no dot) as a string: accept what float() accepts
        with contextlib.suppress(ValueError):
            value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RegistryError(
            f"{where}: field {key!r} must be {kind.__name__}, got {value!r}"
        )
    return value


def _timezone(raw: Any, where: str) -> str:
    tz = str(raw)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise RegistryError(f"{where}: field 'timezone' is {tz!r}, not an IANA time zone "
                            "(e.g. Asia/Shanghai)") from None
    return tz


def _positive(entry: Mapping[str, Any], key: str, where: str) -> float:
    """A required-or-present float field that must be finite and > 0."""
    value: float = _req(entry, key, where, float)
    if not math.isfinite(value) or value <= 0:
        raise RegistryError(f"{where}: field {key!r} must be a finite number > 0, got {value!r}")
    return value


def _parse_source(raw: Any, where: str) -> DeviceSource | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: field 'source' must be a mapping")
    _known(raw, SOURCE_FIELDS, _at(raw, f"{where}: source"))
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
    denominators: list[Denominator] = []
    instruments: list[Instrument] = []
    sources: dict[tuple[str, str, str | None], str] = {}
    meter_where: dict[str, str] = {}
    for i, s in enumerate(doc["sites"]):
        where = f"{source}: sites[{i}]"
        if not isinstance(s, Mapping):
            raise RegistryError(f"{where}: must be a mapping")
        site_id = _req(s, "id", _at(s, where), str)
        where = _at(s, f"{source}: site {site_id!r}")
        _known(s, SITE_FIELDS, where)
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
            timezone=_timezone(s.get("timezone", "Asia/Shanghai"), where),
            construction_start=_date(s.get("construction_start"), where, "construction_start"),
            construction_end=_date(s.get("construction_end"), where, "construction_end"),
            boundary=None if s.get("boundary") is None else str(s["boundary"]),
            factor_overrides=_overrides(s.get("factor_overrides"), where),
        )
        denominators.extend(_denominators(s.get("denominators"), site_id, where))
        instruments.extend(_instruments(s.get("instruments"), site_id, where))
        for j, m in enumerate(s.get("meters") or []):
            mwhere = f"{where}: meters[{j}]"
            if not isinstance(m, Mapping):
                raise RegistryError(f"{mwhere}: must be a mapping")
            meter_id = _req(m, "id", _at(m, mwhere), str)
            mwhere = _at(m, f"{source}: site {site_id!r}: meter {meter_id!r}")
            _known(m, METER_FIELDS, mwhere)
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
            register_max = _positive(m, "register_max", mwhere)
            max_rate = _positive(m, "max_rate_per_h", mwhere)
            parent = m.get("parent")
            dev_source = _parse_source(m.get("source"), mwhere)
            if dev_source is not None:
                key = (dev_source.format, dev_source.device, dev_source.channel)
                if key in sources:
                    raise RegistryError(
                        f"{mwhere}: field 'source': device {dev_source.device!r} (format "
                        f"{dev_source.format}, channel {dev_source.channel!r}) already reports "
                        f"meter {sources[key]!r}; one device channel is one meter")
                sources[key] = meter_id
            meter_where[meter_id] = mwhere
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
                max_gap_s=(None if m.get("max_gap_s") is None
                           else _positive(m, "max_gap_s", mwhere)),
            )
    for meter in meters.values():
        mwhere = meter_where[meter.meter_id]
        if meter.parent_id is None:
            continue
        parent_meter = meters.get(meter.parent_id)
        if parent_meter is None:
            raise RegistryError(
                f"{mwhere}: field 'parent' names unknown meter {meter.parent_id!r}")
        if parent_meter.site_id != meter.site_id:
            raise RegistryError(
                f"{mwhere}: field 'parent' names meter {meter.parent_id!r} of site "
                f"{parent_meter.site_id!r}; a parent must be in the same site")
        chain = [meter.meter_id]
        cur: Meter | None = parent_meter
        while cur is not None and len(chain) <= len(meters):
            if cur.meter_id in chain:
                path = " -> ".join([*chain, cur.meter_id])
                raise RegistryError(f"{mwhere}: field 'parent' makes a cycle: {path}")
            chain.append(cur.meter_id)
            cur = meters.get(cur.parent_id) if cur.parent_id is not None else None
    seen: dict[str, str] = {}
    for ins in instruments:
        if ins.instrument_id in seen:
            raise RegistryError(
                f"{source}: instrument {ins.instrument_id!r} is declared twice (sites "
                f"{seen[ins.instrument_id]!r} and {ins.site_id!r}): a certificate or contract "
                f"counts once"
            )
        seen[ins.instrument_id] = ins.site_id
    return Registry(sites=sites, meters=meters, denominators=tuple(denominators),
                    instruments=tuple(instruments))


def _overrides(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{where}: field 'factor_overrides' must be a mapping of factor "
                            f"kind to override, e.g. {{grid_average: {{data_year: 2022}}}}")
    out: dict[str, dict[str, Any]] = {}
    for kind, value in raw.items():
        if kind == LINE_KEY:
            continue
        if not isinstance(value, Mapping):
            raise RegistryError(f"{where}: factor_overrides.{kind} must be a mapping")
        out[str(kind)] = {k: v for k, v in value.items() if k != LINE_KEY}
    return out


def _denominators(raw: Any, site_id: str, where: str) -> list[Denominator]:
    out = []
    for k, d in enumerate(raw or []):
        dwhere = _at(d, f"{where}: denominators[{k}]")
        if not isinstance(d, Mapping):
            raise RegistryError(f"{dwhere}: must be a mapping")
        _known(d, frozenset({"kind", "month", "value", "unit", "source"}), dwhere)
        kind = _req(d, "kind", dwhere, str)
        if kind not in DENOMINATOR_KINDS:
            raise RegistryError(f"{dwhere}: field 'kind' is {kind!r}; accepted: "
                                f"{', '.join(sorted(DENOMINATOR_KINDS))}")
        value = _req(d, "value", dwhere, float)
        if value < 0:
            raise RegistryError(f"{dwhere}: field 'value' must be >= 0, got {value}")
        unit = str(d.get("unit", DENOMINATOR_KINDS[kind]))
        if unit != DENOMINATOR_KINDS[kind]:
            raise RegistryError(f"{dwhere}: field 'unit' is {unit!r}; {kind} is in "
                                f"{DENOMINATOR_KINDS[kind]!r}")
        out.append(Denominator(site_id, kind, _month(_req(d, "month", dwhere, str), dwhere,
                                                      "month"), value, unit,
                               None if d.get("source") is None else str(d["source"])))
    return out


def _instruments(raw: Any, site_id: str, where: str) -> list[Instrument]:
    out = []
    allowed = frozenset({"id", "kind", "quantity", "unit", "from", "to", "vintage", "retired",
                         "registry"})
    for k, d in enumerate(raw or []):
        iwhere = _at(d, f"{where}: instruments[{k}]")
        if not isinstance(d, Mapping):
            raise RegistryError(f"{iwhere}: must be a mapping")
        _known(d, allowed, iwhere)
        ins_id = _req(d, "id", iwhere, str)
        iwhere = _at(d, f"{where}: instrument {ins_id!r}")
        kind = _req(d, "kind", iwhere, str)
        if kind not in INSTRUMENT_KINDS:
            raise RegistryError(f"{iwhere}: field 'kind' is {kind!r}; accepted: "
                                f"{', '.join(sorted(INSTRUMENT_KINDS))}")
        unit = str(d.get("unit", INSTRUMENT_KINDS[kind]))
        if unit != INSTRUMENT_KINDS[kind]:
            raise RegistryError(f"{iwhere}: field 'unit' is {unit!r}; a {kind} is counted in "
                                f"{INSTRUMENT_KINDS[kind]!r}")
        qty = _req(d, "quantity", iwhere, float)
        if qty < 0:
            raise RegistryError(f"{iwhere}: field 'quantity' must be >= 0, got {qty}")
        start = _month(_req(d, "from", iwhere, str), iwhere, "from")
        end = _month(d.get("to", str(d["from"])), iwhere, "to")
        if end < start:
            raise RegistryError(f"{iwhere}: field 'to' ({end:%Y-%m}) is before 'from' "
                                f"({start:%Y-%m})")
        vintage = d.get("vintage")
        if vintage is not None and not isinstance(vintage, int):
            raise RegistryError(f"{iwhere}: field 'vintage' must be a year, got {vintage!r}")
        retired = d.get("retired", kind != "green_certificate")
        if not isinstance(retired, bool):
            raise RegistryError(f"{iwhere}: field 'retired' must be true or false")
        if kind == "green_certificate" and vintage is None:
            raise RegistryError(f"{iwhere}: a green certificate needs its 'vintage'")
        out.append(Instrument(ins_id, site_id, kind, qty, unit, start, end, vintage, retired,
                              None if d.get("registry") is None else str(d["registry"])))
    return out


def diff_registries(old: Registry, new: Registry) -> list[str]:
    """Human-readable differences from ``old`` to ``new``: ``+`` added, ``-`` removed,
    ``~`` changed (with each changed field's old and new value)."""
    out: list[str] = []

    def compare(kind: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        for key in sorted(set(a) | set(b)):
            if key not in a:
                out.append(f"+ {kind} {key}")
            elif key not in b:
                out.append(f"- {kind} {key}")
            elif a[key] != b[key]:
                fields = [
                    f"{name}: {getattr(a[key], name)!r} -> {getattr(b[key], name)!r}"
                    for name in a[key].__dataclass_fields__
                    if getattr(a[key], name) != getattr(b[key], name)
                ]
                out.append(f"~ {kind} {key}: " + "; ".join(fields))

    compare("site", old.sites, new.sites)
    compare("meter", old.meters, new.meters)
    compare("denominator", {f"{d.site_id}/{d.kind}/{d.month:%Y-%m}": d for d in old.denominators},
            {f"{d.site_id}/{d.kind}/{d.month:%Y-%m}": d for d in new.denominators})
    compare("instrument", {i.instrument_id: i for i in old.instruments},
            {i.instrument_id: i for i in new.instruments})
    return out
