"""Site profiles of every pilot type (simulators.profiles.SiteSimulation) on the sample
registries: tree invariants, exact integration, and the shapes each profile promises."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carbon.registry import Registry, parse_registry
from carbon.units import Carrier
from core.registry_yaml import load_registry
from simulators.formats import gateway_format
from simulators.profiles import (
    MAX_RATE_FRACTION,
    SCHEDULES,
    LoadKind,
    ParkSimulation,
    Schedule,
    SiteSimulation,
    arrivals_fraction,
    classify_meter,
    is_campus_vacation,
    is_public_holiday,
    schedule_for,
)
from simulators.scale import PROFILES, SITES_DIR

SHANGHAI = ZoneInfo("Asia/Shanghai")
SAMPLES = sorted({PROFILES[p] for p in PROFILES})


def local(y: int, mo: int, d: int, h: float = 0.0) -> datetime:
    """Local (Asia/Shanghai) wall time as an aware UTC datetime."""
    return (datetime(y, mo, d, tzinfo=SHANGHAI) + timedelta(hours=h)).astimezone(UTC)


def registry(name: str) -> Registry:
    return load_registry(SITES_DIR / name)


def kids(reg: Registry) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in reg.meters.values():
        if m.parent_id is not None and m.carrier not in (Carrier.ONSITE_RENEWABLE,
                                                         Carrier.GRID_EXPORT):
            out.setdefault(m.parent_id, []).append(m.meter_id)
    return out


def connection_terms(reg: Registry, site_id: str) -> tuple[list[str], list[str]]:
    """Top-level PV and export meters of a site (netted at its grid connection)."""
    top = [m for m in reg.meters.values() if m.site_id == site_id and m.parent_id is None]
    return ([m.meter_id for m in top if m.carrier is Carrier.ONSITE_RENEWABLE],
            [m.meter_id for m in top if m.carrier is Carrier.GRID_EXPORT])


# ----------------------------------------------------------------------------- registries


def test_every_pilot_type_has_a_sample_and_the_provinces_are_covered() -> None:
    types = set()
    provinces = set()
    for name in SAMPLES:
        reg = registry(name)
        for s in reg.sites.values():
            types.add(s.site_type)
            provinces.add(s.province)
    assert {"park", "campus", "community", "scenic_area", "commercial",
            "public_institution"} <= types
    assert {"sichuan", "guangxi", "guangdong"} <= provinces


@pytest.mark.parametrize("name", SAMPLES)
def test_each_gateway_speaks_one_format_with_devices_mapped(name: str) -> None:
    reg = registry(name)
    gateways: dict[tuple[str, str], list[str]] = {}
    for m in reg.meters.values():
        gateways.setdefault((m.site_id, m.gateway_id), []).append(m.meter_id)
    sources = set()
    for ids in gateways.values():
        fmt = gateway_format([reg.meters[i] for i in ids])  # raises on a mix
        for i in ids:
            src = reg.meters[i].source
            if fmt == "nzc":
                assert src is None
                continue
            assert src is not None
            key = (src.format, src.device, src.channel)
            assert key not in sources, key  # every vendor value maps to one meter
            sources.add(key)
            assert reg.meter_for_device(*key) is reg.meters[i]


def test_the_vendor_formats_are_all_used() -> None:
    used = set()
    for name in SAMPLES:
        for m in registry(name).meters.values():
            used.add(m.source.format if m.source else "nzc")
    assert used == {"nzc", "tasmota", "shelly_gen1", "shelly_gen2", "zigbee2mqtt", "neuron",
                    "sparkplug"}


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", SAMPLES)
def test_tree_balance_and_max_rate_every_slot_of_two_weeks(name: str) -> None:
    reg = registry(name)
    start = local(2026, 7, 6)  # a Monday in the summer vacation, hot
    sim = SiteSimulation(reg, 5, start)
    tree = kids(reg)
    conv = {mid: m.to_canonical for mid, m in reg.meters.items()}
    conn: dict[str, tuple[list[str], list[str]]] = {}
    for s in reg.sites:
        pv, ex = connection_terms(reg, s)
        roots = [m for m in reg.meters.values() if m.site_id == s and m.parent_id is None
                 and m.carrier is Carrier.GRID_IMPORT]
        if pv and roots:
            main = max(roots, key=lambda m: m.max_rate_per_h * m.to_canonical)
            conn[main.meter_id] = (pv, ex)
    for k in range(0, 14 * 1440, 7):
        t = start + timedelta(minutes=k)
        r = sim.rates_at(t)
        for mid, rate in r.items():
            assert 0.0 <= rate <= MAX_RATE_FRACTION * reg.meters[mid].max_rate_per_h, (mid, t)
        c = {mid: v * conv[mid] for mid, v in r.items()}
        for parent, children in tree.items():
            seen = c[parent]
            if parent in conn:
                pv, ex = conn[parent]
                seen += sum(c[p] for p in pv) - sum(c[e] for e in ex)
                assert not (c[parent] > 0 and sum(c[e] for e in ex) > 0)
            # parent = children + unmetered remainder, and losses are at least 5 %
            assert seen >= 1.05 * sum(c[x] for x in children) - 1e-9, (parent, t)


@pytest.mark.parametrize("name", SAMPLES)
def test_registers_integrate_the_rates_exactly_and_roll_over(name: str) -> None:
    reg = registry(name)
    start = local(2026, 3, 9, 5.5)
    t0, t1 = start + timedelta(minutes=7, seconds=11), start + timedelta(hours=9, seconds=29)
    probe = SiteSimulation(reg, 9, start)
    expected = dict.fromkeys(reg.meters, 0.0)
    t = t0
    while t < t1:
        _, slot_end = probe.slot_bounds(t)
        seg = min(slot_end, t1)
        for mid, rate in probe.rates_at(t).items():
            expected[mid] += rate * (seg - t).total_seconds() / 3600.0
        t = seg
    # the first meter starts so that it passes register_max halfway between t0 and t1
    first = next(iter(reg.meters.values()))
    before = probe.energy_since_start(t0)[first.meter_id]
    top = first.register_max - before - expected[first.meter_id] / 2
    sim = SiteSimulation(reg, 9, start, initial_registers={first.meter_id: top})
    r0, r1 = sim.registers_at(t0), sim.registers_at(t1)
    for mid, e in expected.items():
        m = reg.meters[mid]
        assert (r1[mid] - r0[mid]) % m.register_max == pytest.approx(e, rel=1e-9, abs=1e-6)
    assert r1[first.meter_id] < r0[first.meter_id]  # it wrapped at register_max
    assert r0[first.meter_id] > 0.9 * first.register_max
    assert expected[first.meter_id] > 1.0


def test_the_sample_park_keeps_its_name_and_kinds() -> None:
    assert ParkSimulation is SiteSimulation
    reg = registry("sample_park.yaml")
    kinds = {mid: classify_meter(m, "park") for mid, m in reg.meters.items()}
    assert kinds["ent-a-line1"] is LoadKind.LINE
    assert kinds["ent-a-hvac"] is LoadKind.HVAC
    assert kinds["svc-ev"] is LoadKind.EV
    assert kinds["svc-canteen-gas"] is LoadKind.GAS_KITCHEN


# ----------------------------------------------------------------------------- calendar


def test_calendar() -> None:
    assert is_public_holiday(date(2026, 10, 3))
    assert is_public_holiday(date(2026, 2, 16))  # Spring Festival eve 2026
    assert is_public_holiday(date(2026, 2, 23))
    assert not is_public_holiday(date(2026, 2, 24))
    assert not is_public_holiday(date(2026, 6, 3))
    assert is_campus_vacation(date(2026, 8, 1)) and is_campus_vacation(date(2026, 2, 1))
    assert not is_campus_vacation(date(2026, 10, 20))


def test_schedule_levels_and_validation() -> None:
    office = SCHEDULES["gov_office"]
    assert office.activity(10.0, 2) == pytest.approx(1.0)
    assert office.activity(10.0, 2, holiday=True) == pytest.approx(0.05)
    teach = SCHEDULES["teaching"]
    assert teach.activity(10.0, 1, vacation=True) == pytest.approx(0.12)
    dorm = SCHEDULES["dormitory"]
    assert dorm.activity(20.5, 1) > 2 * dorm.activity(3.0, 1) > 0  # night base load
    with pytest.raises(ValueError, match="24 values"):
        Schedule("x", 0, 24, (1,) * 7, hourly=(0.5,) * 23)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Schedule("x", 0, 24, (1.5,) * 7)
    assert schedule_for("dormitory-east", "campus").name == "dormitory"
    assert schedule_for("food-court", "commercial").name == "canteen"
    assert schedule_for(None, "community").name == "residential"
    assert schedule_for("enterprise-a", "park").name == "two_shift"
    with pytest.raises(ValueError, match="accepted"):
        SiteSimulation(registry("campus.yaml"), 1, local(2026, 3, 2), schedules={"x": "nope"})


# ----------------------------------------------------------------------------- shapes


def day_energy(sim: SiteSimulation, day: datetime, meter: str) -> float:
    """Energy through ``meter`` in the 24 h from ``day`` [meter unit]. A fresh simulation
    starting that day has the same rates (they do not depend on the start) and integrates
    one day instead of everything since ``sim``'s start."""
    day_sim = SiteSimulation(sim.registry, sim.seed, day)
    return day_sim.energy_since_start(day + timedelta(days=1))[meter]


def test_campus_term_holiday_night_and_canteen() -> None:
    sim = SiteSimulation(registry("campus.yaml"), 2, local(2026, 3, 1))
    term = local(2026, 3, 11)  # Wednesday in term
    vac = local(2026, 7, 22)  # Wednesday in the summer vacation
    for meter in ("hc-teach-a", "hc-dorm-1", "hc-canteen-gas"):
        assert day_energy(sim, vac, meter) < 0.5 * day_energy(sim, term, meter), meter
    night = sim.rates_at(term + timedelta(hours=3))
    evening = sim.rates_at(term + timedelta(hours=20.5))
    assert night["hc-dorm-1"] > 0  # night base load
    assert evening["hc-dorm-1"] > 2 * night["hc-dorm-1"]
    lunch = sim.rates_at(term + timedelta(hours=11.8))["hc-canteen-gas"]
    assert lunch > 5 * sim.rates_at(term + timedelta(hours=15))["hc-canteen-gas"]
    assert night["hc-street-light"] > 5 * sim.rates_at(term + timedelta(hours=13))[
        "hc-street-light"]
    national_day = local(2026, 10, 2)  # Friday, public holiday
    normal_friday = local(2026, 10, 16)
    assert day_energy(sim, national_day, "hc-teach-b") < 0.5 * day_energy(
        sim, normal_friday, "hc-teach-b")


def test_community_evening_peak_lighting_and_night_charging() -> None:
    sim = SiteSimulation(registry("community.yaml"), 3, local(2026, 5, 1))
    d = local(2026, 5, 13)
    r = {h: sim.rates_at(d + timedelta(hours=h)) for h in (3.0, 11.0, 13.0, 20.0)}
    assert r[20.0]["gzc-bldg-1"] > 1.5 * r[11.0]["gzc-bldg-1"]
    assert r[3.0]["gzc-public-light"] > 5 * r[13.0]["gzc-public-light"]
    assert r[3.0]["gzc-ev-1"] > 3 * r[11.0]["gzc-ev-1"]  # valley-tariff charging
    assert r[13.0]["gzc-centre-pv"] > 0.0 == r[3.0]["gzc-centre-pv"]  # PV behind a sub-meter
    assert r[20.0]["gzc-gas"] > 3 * r[3.0]["gzc-gas"]


def test_scenic_area_visitors_drive_load() -> None:
    reg = registry("scenic_area.yaml")
    sim = SiteSimulation(reg, 4, local(2026, 4, 1))
    wed, sat, golden = date(2026, 4, 15), date(2026, 4, 18), date(2026, 10, 3)
    assert sim.daily_visitors("bm-scenic", sat) > 1.3 * sim.daily_visitors("bm-scenic", wed)
    assert sim.daily_visitors("bm-scenic", golden) > 2 * sim.daily_visitors("bm-scenic", wed)
    day0 = local(2026, 4, 18)
    total = sim.visitors_between("bm-scenic", day0, day0 + timedelta(days=1))
    assert total == pytest.approx(sim.daily_visitors("bm-scenic", sat), abs=0.5)
    morning = sim.visitors_between("bm-scenic", day0, day0 + timedelta(hours=12))
    assert 0.5 * total < morning < total  # most arrive before noon
    assert sim.visitors_between("bm-scenic", day0, day0 + timedelta(hours=7)) == 0.0
    assert arrivals_fraction(0.0, 24.0) == pytest.approx(1.0)
    busy = sim.rates_at(day0 + timedelta(hours=13))["bm-toilets-pumps"]
    quiet = sim.rates_at(local(2026, 4, 15, 13))["bm-toilets-pumps"]
    assert busy > 1.2 * quiet > sim.rates_at(day0 + timedelta(hours=2))["bm-toilets-pumps"]
    assert SiteSimulation(registry("campus.yaml"), 1, day0).daily_visitors("hc-campus", sat) == 0
    with pytest.raises(ValueError, match="unknown site"):
        sim.daily_visitors("nope", sat)


def test_industrial_park_shifts_data_centre_and_waste_heat() -> None:
    reg = registry("industrial_park.yaml")
    sim = SiteSimulation(reg, 6, local(2026, 1, 1))
    d = local(2026, 6, 10)  # Wednesday
    night, day = sim.rates_at(d + timedelta(hours=3)), sim.rates_at(d + timedelta(hours=10))
    assert night["ip-met-furnace1"] > 0.7 * day["ip-met-furnace1"]  # three shifts
    assert day["ip-food-line"] > 5 * night["ip-food-line"]  # day shift only
    assert night["ip-met-waste-heat"] > 0.0
    for t in (d + timedelta(hours=h) for h in range(0, 24, 3)):
        r = sim.rates_at(t)
        it = r["ip-dc-it-a"] + r["ip-dc-it-b"]
        pue = r["ip-dc-main"] / it
        assert 1.15 < pue < 1.6, (t, pue)
        assert r["ip-dc-facility"] == pytest.approx(
            it * (r["ip-dc-facility"] / it), rel=1e-12)
        assert 0.1 < r["ip-dc-facility"] / it < 0.26
    winter_facility = sim.rates_at(local(2026, 1, 14, 10))["ip-dc-facility"] / (
        sim.rates_at(local(2026, 1, 14, 10))["ip-dc-it-a"]
        + sim.rates_at(local(2026, 1, 14, 10))["ip-dc-it-b"])
    summer_facility = day["ip-dc-facility"] / (day["ip-dc-it-a"] + day["ip-dc-it-b"])
    assert summer_facility > winter_facility  # cooling works harder in summer


def test_commercial_and_public_institution_hours() -> None:
    mall = SiteSimulation(registry("commercial.yaml"), 7, local(2026, 5, 1))
    assert mall.rates_at(local(2026, 5, 16, 15))["sz-tenant-01-shop"] > 3 * mall.rates_at(
        local(2026, 5, 16, 3))["sz-tenant-01-shop"]
    assert day_energy(mall, local(2026, 5, 16), "sz-tenant-02-shop") > day_energy(
        mall, local(2026, 5, 13), "sz-tenant-02-shop")  # Saturday busier than Wednesday
    gov = SiteSimulation(registry("public_institution.yaml"), 7, local(2026, 9, 1))
    weekday = day_energy(gov, local(2026, 9, 23), "cdg-floor-1")
    assert day_energy(gov, local(2026, 10, 1), "cdg-floor-1") < 0.4 * weekday  # National Day
    assert day_energy(gov, local(2026, 9, 27), "cdg-floor-1") < 0.4 * weekday  # Sunday
    it = gov.rates_at(local(2026, 10, 1, 3))["cdg-it"]
    assert it > 0.3 * 80  # the server room never stops


def test_pv_behind_a_sub_meter_is_not_netted_and_kinds_can_be_overridden() -> None:
    doc = {"sites": [{
        "id": "s", "name": "s", "type": "campus", "province": "guangxi", "city": "Hechi",
        "baseline_year": 2022,
        "meters": [
            {"id": "main", "carrier": "grid_import", "unit": "kWh", "gateway": "g",
             "register_max": 1e6, "max_rate_per_h": 500},
            {"id": "roof-pv", "carrier": "onsite_renewable", "unit": "kWh", "gateway": "g",
             "parent": "main", "register_max": 1e6, "max_rate_per_h": 100},
            {"id": "hall", "carrier": "grid_import", "unit": "kWh", "gateway": "g",
             "parent": "main", "register_max": 1e6, "max_rate_per_h": 200},
        ],
    }]}
    reg = parse_registry(doc)
    noon = local(2026, 6, 3, 12.5)
    sim = SiteSimulation(reg, 1, noon, kinds={"hall": LoadKind.IT_LOAD})
    r = sim.rates_at(noon)
    assert r["roof-pv"] > 10.0
    assert r["main"] >= 1.05 * r["hall"]  # PV neither added nor subtracted
    assert r["hall"] >= 0.45 * 0.85 * 0.93 * 200 * 0.9  # IT load shape, not a building
