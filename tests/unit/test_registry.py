"""The pilot registry: validation errors name file, line and field; people-entered data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from carbon.registry import RegistryError
from core.registry_yaml import load_registry

GOOD = """\
sites:
  - id: cd-campus
    name: Test campus
    type: campus
    province: sichuan
    city: Chengdu
    baseline_year: 2022
    construction_start: 2024-01-01
    construction_end: 2025-12-31
    boundary: campus fence incl. dormitories
    factor_overrides: {grid_average: {data_year: 2022}}
    meters:
      - {id: main, carrier: grid_import, unit: kWh, gateway: g1, register_max: 1e6, max_rate_per_h: 900}
      - {id: pv, carrier: onsite_renewable, unit: kWh, gateway: g1, register_max: 1e6, max_rate_per_h: 300, max_gap_s: 3600}
    denominators:
      - {kind: population, month: 2026-03, value: 12000}
      - {kind: floor_area, month: 2026-03, value: 250000, unit: m2, source: facilities office}
    instruments:
      - {id: GEC-2026-000123, kind: green_certificate, quantity: 50, vintage: 2026, retired: true, from: 2026-03}
      - {id: GP-2026-Q1, kind: green_power, quantity: 120, from: 2026-01, to: 2026-03}
      - {id: CCER-001, kind: ccer, quantity: 10.5, from: 2026-01, registry: CCER registry}
"""


def load(tmp_path: Path, text: str) -> object:
    p = tmp_path / "registry.yaml"
    p.write_text(text)
    return load_registry(p)


def test_full_site_loads(tmp_path: Path) -> None:
    reg = load(tmp_path, GOOD)
    site = reg.sites["cd-campus"]  # type: ignore[attr-defined]
    assert site.construction_end == date(2025, 12, 31)
    assert site.factor_overrides == {"grid_average": {"data_year": 2022}}
    assert reg.meters["pv"].max_gap_s == 3600.0  # type: ignore[attr-defined]
    dens = reg.denominators  # type: ignore[attr-defined]
    assert [(d.kind, d.month, d.value, d.unit) for d in dens] == [
        ("population", date(2026, 3, 1), 12000.0, "person"),
        ("floor_area", date(2026, 3, 1), 250000.0, "m2"),
    ]
    ins = {i.instrument_id: i for i in reg.instruments}  # type: ignore[attr-defined]
    assert ins["GP-2026-Q1"].period_end == date(2026, 3, 1) and ins["GP-2026-Q1"].unit == "MWh"
    assert ins["GEC-2026-000123"].retired and ins["GEC-2026-000123"].vintage == 2026
    assert ins["CCER-001"].unit == "tCO2"


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("unit: kWh, gateway: g1, register_max: 1e6, max_rate_per_h: 900",
         "unit: m3, gateway: g1, register_max: 1e6, max_rate_per_h: 900",
         ["meter 'main'", "line 13", "'unit'", "accepted"]),
        ("max_rate_per_h: 300, max_gap_s", "max_rate: 300, max_gap_s",
         ["meter 'pv'", "line 14", "unknown field 'max_rate'"]),
        ("kind: population", "kind: residents", ["denominators[0]", "line 16", "'kind'"]),
        ("month: 2026-03, value: 12000", "month: March, value: 12000",
         ["line 16", "'month'", "YYYY-MM"]),
        ("vintage: 2026, retired: true", "retired: true",
         ["GEC-2026-000123", "line 19", "vintage"]),
        ("from: 2026-01, to: 2026-03", "from: 2026-03, to: 2026-01", ["GP-2026-Q1", "before"]),
        ("type: campus", "type: university", ["site 'cd-campus'", "line 2", "accepted"]),
        ("boundary: campus", "bondary: campus", ["unknown field 'bondary'"]),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str,
                                         fragments: list[str]) -> None:
    assert old in GOOD
    with pytest.raises(RegistryError) as err:
        load(tmp_path, GOOD.replace(old, new))
    msg = str(err.value)
    assert str(tmp_path / "registry.yaml") in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_a_certificate_counts_once(tmp_path: Path) -> None:
    second = GOOD.replace("id: cd-campus", "id: cd-campus-2").replace("id: main", "id: main2")
    second = second.replace("id: pv,", "id: pv2,").replace("sites:\n", "")
    with pytest.raises(RegistryError, match="declared twice"):
        load(tmp_path, GOOD + second)


def test_sample_registries_load() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in [*sorted((root / "simulators" / "sites").glob("*.yaml")),
                 root / "tests" / "data" / "registry.yaml"]:
        assert load_registry(path).meters, path


def test_diff_names_added_removed_and_changed(tmp_path: Path) -> None:
    from carbon.registry import diff_registries

    old = load(tmp_path, GOOD)
    changed = (GOOD.replace("max_rate_per_h: 900", "max_rate_per_h: 1200")
               .replace("      - {id: pv, carrier: onsite_renewable, unit: kWh, gateway: g1,"
                        " register_max: 1e6, max_rate_per_h: 300, max_gap_s: 3600}\n", "")
               .replace("{id: CCER-001, kind: ccer, quantity: 10.5",
                        "{id: CCER-002, kind: ccer, quantity: 10.5"))
    new = load(tmp_path, changed)
    lines = diff_registries(old, new)  # type: ignore[arg-type]
    assert "- meter pv" in lines
    assert "+ instrument CCER-002" in lines and "- instrument CCER-001" in lines
    assert any(x.startswith("~ meter main: max_rate_per_h: 900.0 -> 1200.0") for x in lines)
    assert diff_registries(old, old) == []  # type: ignore[arg-type]


def test_user_supplied_factors_file_overrides_without_code(tmp_path: Path) -> None:
    from core.factors_io import load_factor_library

    p = tmp_path / "factors.yaml"
    p.write_text(
        "factors:\n"
        "  - {factor_id: grid.avg.sichuan, version: sc-2026-update, value: 0.1234,\n"
        "     unit: kgCO2/kWh, kind: grid_average, region: sichuan, data_year: 2024,\n"
        "     source: Sichuan provincial notice (test)}\n")
    lib = load_factor_library(p)
    f = lib.grid_factor("sichuan", 2026)
    assert (f.version, f.value, f.data_year) == ("sc-2026-update", 0.1234, 2024)
    assert load_factor_library(None).grid_factor("sichuan", 2026).value == 0.1564


def test_a_directory_is_every_file_merged_and_round_trips(tmp_path: Path) -> None:
    from core.registry_yaml import parse_registry_text, registry_text

    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("cd-campus", "cd-campus-2")
                                     .replace("id: main,", "id: main-b,")
                                     .replace("id: pv,", "id: pv-b,")
                                     .replace("GEC-2026-000123", "GEC-B").replace("GP-2026-Q1", "GP-B")
                                     .replace("CCER-001", "CCER-B"))
    reg = load_registry(tmp_path)
    assert set(reg.sites) == {"cd-campus", "cd-campus-2"} and len(reg.meters) == 4
    again = parse_registry_text(registry_text(tmp_path), "stored")
    assert again.meters == reg.meters and set(again.sites) == set(reg.sites)
    (tmp_path / "c.yaml").write_text(GOOD.replace("cd-campus", "cd-campus-3"))
    with pytest.raises(RegistryError, match="declared in two files"):
        load_registry(tmp_path)


# ---- issue 8 item 7: what the registry must refuse; each names file, line and field ----

MAIN = "{id: main, carrier: grid_import, unit: kWh, gateway: g1, register_max: 1e6, max_rate_per_h: 900}"
PV = ("{id: pv, carrier: onsite_renewable, unit: kWh, gateway: g1, register_max: 1e6, "
      "max_rate_per_h: 300, max_gap_s: 3600}")
SECOND_SITE = """\
  - id: other
    name: Other site
    type: park
    province: sichuan
    city: Chengdu
    baseline_year: 2022
    meters:
      - {id: sub, carrier: grid_import, unit: kWh, gateway: g2, register_max: 1e6, max_rate_per_h: 9, parent: main}
"""


def refused(tmp_path: Path, text: str | bytes, *fragments: str) -> str:
    p = tmp_path / "registry.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    with pytest.raises(RegistryError) as err:
        load_registry(p)
    msg = str(err.value)
    assert str(p) in msg and "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


def test_register_max_nan_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, GOOD.replace("register_max: 1e6, max_rate_per_h: 900",
                                   "register_max: .nan, max_rate_per_h: 900"),
            "meter 'main'", "line 13", "'register_max'")


def test_register_max_inf_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, GOOD.replace("register_max: 1e6, max_rate_per_h: 900",
                                   "register_max: .inf, max_rate_per_h: 900"),
            "meter 'main'", "line 13", "'register_max'")


def test_negative_max_gap_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, GOOD.replace("max_gap_s: 3600", "max_gap_s: -60"),
            "meter 'pv'", "line 14", "'max_gap_s'")


def test_a_meter_that_is_its_own_parent_is_refused(tmp_path: Path) -> None:
    assert MAIN in GOOD
    refused(tmp_path, GOOD.replace(MAIN, MAIN[:-1] + ", parent: main}"),
            "meter 'main'", "line 13", "'parent'", "cycle", "main -> main")


def test_a_parent_cycle_of_two_meters_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(MAIN, MAIN[:-1] + ", parent: pv}").replace(PV, PV[:-1] + ", parent: main}")
    refused(tmp_path, text, "line 13", "'parent'", "cycle", "main -> pv -> main")


def test_a_parent_in_another_site_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, GOOD + SECOND_SITE, "meter 'sub'", "line 29", "'parent'",
            "site 'cd-campus'")


def test_two_meters_on_one_device_source_are_refused(tmp_path: Path) -> None:
    src = ", source: {format: tasmota, device: tasmota_1, channel: '1'}}"
    text = GOOD.replace(MAIN, MAIN[:-1] + src).replace(PV, PV[:-1] + src)
    refused(tmp_path, text, "meter 'pv'", "line 14", "'source'", "tasmota_1", "'main'")


def test_a_typo_inside_source_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(MAIN, MAIN[:-1] + ", source: {format: tasmota, device: t1, chanel: 2}}")
    refused(tmp_path, text, "meter 'main'", "source", "line 13", "unknown field 'chanel'")


def test_an_unknown_timezone_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    city: Chengdu\n", "    city: Chengdu\n    timezone: Mars/Olympus\n")
    refused(tmp_path, text, "site 'cd-campus'", "line 2", "'timezone'", "Mars/Olympus")


def test_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    city: Chengdu\n", "    city: Chengdu\n    city: Mianyang\n")
    refused(tmp_path, text, "line 7", "'city'", "twice")


def test_aliases_are_refused_so_no_billion_laughs(tmp_path: Path) -> None:
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in "bcdefghi":
        prev = chr(ord(k) - 1)
        laughs.append(f"{k}: &{k} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = GOOD.replace("    boundary: campus", "    boundary: *i\n    boundary2: campus")
    refused(tmp_path, "\n".join(laughs) + "\n" + text, "line 1", "anchor &a")
    refused(tmp_path, GOOD.replace("name: Test campus", "name: *x"), "line 3", "alias *x")


def test_nesting_ten_thousand_deep_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "sites:\n  - " + "[" * 10_000 + "]" * 10_000 + "\n", "line 2", "nesting")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    data = GOOD.encode().replace(b"Test campus", b"Test \xff campus")
    refused(tmp_path, data, "line 3", "not UTF-8")


def test_an_impossible_date_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("construction_start: 2024-01-01", "construction_start: 2026-02-30")
    refused(tmp_path, text, "line 8", "'construction_start'", "2026-02-30")


def test_libyaml_path_builds_and_refuses_exactly_like_the_python_loader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.registry_yaml as ry

    assert ry._FastLoader is not None, "PyYAML without libyaml: the fast path is never taken"
    samples = sorted(Path("simulators/sites").glob("*.yaml"))
    dup = tmp_path / "dup.yaml"
    dup.write_text(GOOD.replace("    city: Chengdu\n", "    city: Chengdu\n    city: Mianyang\n"))

    def load_all() -> tuple[list[object], str]:
        regs: list[object] = [load_registry(p) for p in samples]
        with pytest.raises(RegistryError) as err:
            load_registry(dup)
        return regs, str(err.value)

    fast = load_all()
    monkeypatch.setattr(ry, "_FastLoader", None)
    slow = load_all()
    assert len(fast[0]) == 7
    assert fast == slow
    assert "line 7" in fast[1]
