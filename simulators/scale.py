"""Registries for load tests: a sample site cloned ``sites`` times, with ``meters_per_site``.

:func:`scale_registry` copies every site of a base registry (a pilot type's sample, see
:data:`PROFILES`) ``sites`` times, renaming sites, meters and device ids so that they stay
unique (``<id>-<nnn>``); with ``meters_per_site`` it keeps the first meters of each copy
(parents before children, as the registry lists them) or adds sub-meters until the count is
reached. Added sub-meters hang under the site's largest top-level grid meter (whose
``max_rate_per_h`` grows by theirs), on gateways of ``gateway_size`` meters, in the formats
``formats`` (cycled per gateway), with synthetic device ids. :func:`registry_document` turns
a registry back into the YAML document ``core.registry_yaml.load_registry`` reads, so that ingest
can load the same registry (``nzc simulate --write-registry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from carbon.registry import Meter, Registry, parse_registry
from carbon.units import Carrier
from simulators.formats import FORMATS

__all__ = [
    "PROFILES",
    "SITES_DIR",
    "profile_path",
    "registry_document",
    "scale_registry",
]

SITES_DIR: Final = Path(__file__).resolve().parent / "sites"

#: Pilot type (``--profile``) -> sample registry in :data:`SITES_DIR`.
PROFILES: Final[dict[str, str]] = {
    "sample_park": "sample_park.yaml",
    "park": "industrial_park.yaml",
    "industrial_park": "industrial_park.yaml",
    "campus": "campus.yaml",
    "community": "community.yaml",
    "scenic_area": "scenic_area.yaml",
    "commercial": "commercial.yaml",
    "public_institution": "public_institution.yaml",
}

_EXTRA_MAX_RATE_KW: Final = 50.0


def profile_path(name: str) -> Path:
    """The sample registry of pilot type ``name`` (see :data:`PROFILES`)."""
    try:
        return SITES_DIR / PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; accepted: {', '.join(PROFILES)}") from None


def _meter_doc(m: Meter) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": m.meter_id, "carrier": m.carrier.value, "unit": m.unit, "gateway": m.gateway_id,
        "register_max": m.register_max, "max_rate_per_h": m.max_rate_per_h,
    }
    if m.parent_id is not None:
        d["parent"] = m.parent_id
    if m.group is not None:
        d["group"] = m.group
    if m.source is not None:
        src: dict[str, Any] = {"format": m.source.format, "device": m.source.device}
        if m.source.channel is not None:
            src["channel"] = m.source.channel
        d["source"] = src
    return d


def registry_document(registry: Registry) -> dict[str, Any]:
    """The registry as a YAML-ready document (sites and meters with their sources; other site
    fields a deployment may add, such as denominators, are not carried over)."""
    sites: list[dict[str, Any]] = []
    for s in registry.sites.values():
        sites.append({
            "id": s.site_id, "name": s.name, "type": s.site_type, "province": s.province,
            "city": s.city, "baseline_year": s.baseline_year, "timezone": s.timezone,
            "meters": [_meter_doc(m) for m in registry.meters.values() if m.site_id == s.site_id],
        })
    return {"sites": sites}


def _suffix_device(fmt: str, device: str, tag: str) -> str:
    """A device id made unique for copy ``tag`` while keeping the shape its format needs."""
    if fmt == "neuron":
        node, group, addr = device.split("/")
        return f"{node}-{tag}/{group}/{addr}"
    if fmt == "sparkplug":
        group, node, dev = device.split("/")
        return f"{group}-{tag}/{node}/{dev}"
    return f"{device}-{tag}"


def _synthetic_source(fmt: str, site_n: int, k: int, gateway: str) -> dict[str, Any] | None:
    """Device id and channel of added meter ``k`` of copy ``site_n`` in format ``fmt``."""
    if fmt == "nzc":
        return None
    if fmt == "tasmota":
        return {"format": fmt, "device": f"tasmota_{site_n:03X}{k:05X}"}
    if fmt == "shelly_gen1":
        return {"format": fmt, "device": f"shellyem3-{site_n:04X}{k:08X}",
                "channel": "emeter/0/total"}
    if fmt == "shelly_gen2":
        return {"format": fmt, "device": f"shellypro3em-{site_n:04x}{k:08x}",
                "channel": "emdata:0/total_act"}
    if fmt == "zigbee2mqtt":
        return {"format": fmt, "device": f"meter_{site_n:03d}_{k:05d}"}
    if fmt == "neuron":
        return {"format": fmt, "device": f"{gateway}-645/meters/{site_n:04d}{k:08d}",
                "channel": "00-00-00-00"}
    return {"format": fmt, "device": f"site{site_n:03d}/{gateway}/m{k:05d}",
            "channel": "Energy/Import/Total"}


def scale_registry(
    base: Registry,
    *,
    sites: int = 1,
    meters_per_site: int | None = None,
    gateway_size: int = 50,
    formats: Sequence[str] = ("nzc",),
) -> Registry:
    """``sites`` copies of every site of ``base`` with ``meters_per_site`` meters each (see
    the module docstring). With ``sites == 1`` and no ``meters_per_site`` the ids are kept."""
    if sites < 1:
        raise ValueError(f"sites must be >= 1, got {sites}")
    if meters_per_site is not None and meters_per_site < 1:
        raise ValueError(f"meters_per_site must be >= 1, got {meters_per_site}")
    if gateway_size < 1:
        raise ValueError(f"gateway_size must be >= 1, got {gateway_size}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats {list(formats)}; accepted: {', '.join(FORMATS)}")
    doc = registry_document(base)
    out_sites: list[dict[str, Any]] = []
    for n in range(sites):
        tag = f"{n:03d}"
        for s in doc["sites"]:
            site = dict(s)
            meters: list[dict[str, Any]] = [dict(m) for m in s["meters"]]
            if meters_per_site is not None and meters_per_site < len(meters):
                kept: list[dict[str, Any]] = []
                ids: set[str] = set()
                for m in meters:
                    if len(kept) == meters_per_site:
                        break
                    if m.get("parent") is None or m["parent"] in ids:
                        kept.append(m)
                        ids.add(m["id"])
                meters = kept
            if meters_per_site is not None and meters_per_site > len(meters):
                _add_meters(meters, meters_per_site - len(meters), n, gateway_size, formats)
            if sites > 1:
                site["id"] = f"{s['id']}-{tag}"
                site["name"] = f"{s['name']} #{n + 1}"
                for m in meters:
                    m["id"] = f"{m['id']}-{tag}"
                    if m.get("parent") is not None:
                        m["parent"] = f"{m['parent']}-{tag}"
                    if m.get("source") is not None:
                        src = dict(m["source"])
                        src["device"] = _suffix_device(src["format"], src["device"], tag)
                        m["source"] = src
            site["meters"] = meters
            out_sites.append(site)
    return parse_registry({"sites": out_sites}, source="<scaled registry>")


def _add_meters(meters: list[dict[str, Any]], count: int, site_n: int, gateway_size: int,
                formats: Sequence[str]) -> None:
    """Append ``count`` electricity sub-meters under the largest top-level grid meter."""
    roots = [m for m in meters
             if m.get("parent") is None and m["carrier"] == Carrier.GRID_IMPORT.value]
    parent = max(roots, key=lambda m: float(m["max_rate_per_h"])) if roots else None
    per_kwh = 1000.0 if parent is not None and parent["unit"] == "Wh" else 1.0
    for k in range(count):
        g = k // gateway_size
        fmt = formats[g % len(formats)]
        gateway = f"gw-x{g:03d}"
        unit = "Wh" if fmt in ("shelly_gen1", "shelly_gen2") else "kWh"
        m: dict[str, Any] = {
            "id": f"x{k:05d}-sub", "carrier": Carrier.GRID_IMPORT.value, "unit": unit,
            "gateway": gateway,
            "register_max": 1e12 if unit == "Wh" else 1e9,
            "max_rate_per_h": _EXTRA_MAX_RATE_KW * (1000.0 if unit == "Wh" else 1.0),
        }
        src = _synthetic_source(fmt, site_n, k, gateway)
        if src is not None:
            m["source"] = src
        if parent is not None:
            m["parent"] = parent["id"]
            parent["max_rate_per_h"] = float(parent["max_rate_per_h"]) + (
                _EXTRA_MAX_RATE_KW * per_kwh)
        meters.append(m)
