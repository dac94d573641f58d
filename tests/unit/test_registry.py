"""The pilot registry: validation errors name file, line and field; people-entered data."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from carbon.registry import RegistryError
from nzc.registry import load_registry

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
    from nzc.factors_io import load_factor_library

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
    from nzc.registry import parse_registry_text, registry_text

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
