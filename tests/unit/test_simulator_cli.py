"""``nzc simulate`` options beyond the sample park (simulators.run, simulators.scale), with a
fake publisher: profiles, faults, scale, reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.registry_yaml import load_registry
from simulators.run import NullPublisher, run_cli
from simulators.scale import PROFILES, profile_path, registry_document, scale_registry
from simulators.scenario import RunReport


class Fake:
    """Records what is published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def connect(self, timeout_s: float = 10.0) -> None:
        pass

    def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        self.sent.append((topic, payload, readings))

    def flush(self, timeout_s: float = 30.0) -> None:
        pass

    def close(self) -> None:
        pass


def cli(argv: list[str]) -> tuple[int, RunReport | None, Fake]:
    fake = Fake()
    rc, report = run_cli(argv, publisher_factory=lambda host, port, inflight: fake)
    return rc, report, fake


BASE = ["--fast", "--start", "2026-05-04T00:00:00Z"]


@pytest.mark.parametrize("profile", sorted(set(PROFILES) - {"park"}))
def test_each_profile_publishes_in_its_gateways_formats(profile: str) -> None:
    rc, report, fake = cli(["--profile", profile, "--count", "3", "--timeless", "send", *BASE])
    assert rc == 0 and report is not None
    reg = load_registry(profile_path(profile))
    assert report.meters == len(reg.meters)
    assert report.readings == sum(n for _, _, n in fake.sent) == 3 * len(reg.meters)
    assert report.messages == len(fake.sent)
    formats = {m.source.format if m.source else "nzc" for m in reg.meters.values()}
    assert set(report.per_format) == formats


def test_demo_arguments_keep_working(capsys: pytest.CaptureFixture[str]) -> None:
    # what nzc demo passes, here with the sample park's registry named (the default registry
    # comes from NZC_REGISTRY, which the real-service tests point elsewhere)
    sample = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "sample_park.yaml"
    rc, report, fake = cli(["--registry", str(sample), "--start", "2026-05-04T00:00:00+00:00",
                            "--duration-s", "600", "--speed", "0", "--interval-s", "60",
                            "--seed", "7"])
    assert rc == 0 and report is not None
    assert len(fake.sent) == 11 * 4 and all(t.startswith("nzc/v1/cd-park/") for t, _, _ in
                                            fake.sent)
    out = capsys.readouterr().out
    assert "published 44 messages, 154 readings" in out


def test_faults_option_and_report_json(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    rc, report, fake = cli(["--profile", "sample_park", "--count", "200", *BASE,
                            "--faults", "duplicate=0.1,spike=0.02", "--report-json", str(path)])
    assert rc == 0 and report is not None
    doc = json.loads(path.read_text())
    assert doc["faults"]["duplicate"]["messages"] == report.faults["duplicate"].messages > 40
    assert doc["fault_rates"] == {"spike": 0.02, "duplicate": 0.1}
    payloads = Counter(p for _, p, _ in fake.sent)
    assert sum(n - 1 for n in payloads.values()) == report.faults["duplicate"].messages


@pytest.mark.parametrize("bad", [
    ["--faults", "flood=0.1"], ["--faults", "spike=3"], ["--offline-rounds", "x"],
    ["--profile", "moon"], ["--sites", "0"], ["--scale-formats", "modbus", "--sites", "2"],
    ["--profile", "campus", "--registry", "x.yaml"],
])
def test_bad_options_exit_2(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli([*bad, "--count", "1", *BASE])
    assert exc.value.code == 2


def test_scale_sites_and_meters_and_write_registry(tmp_path: Path) -> None:
    out = tmp_path / "scaled.yaml"
    rc, report, _ = cli(["--profile", "campus", "--sites", "3", "--meters-per-site", "60",
                            "--gateway-size", "20", "--scale-formats", "tasmota,sparkplug",
                            "--count", "2", "--write-registry", str(out), "--timeless",
                            "send", *BASE])
    assert rc == 0 and report is not None
    reg = load_registry(out)  # what ingest would load
    assert len(reg.sites) == 3 and len(reg.meters) == 180 == report.meters
    assert report.readings == 2 * 180
    per_site = Counter(m.site_id for m in reg.meters.values())
    assert set(per_site.values()) == {60}
    keys = [(m.source.format, m.source.device, m.source.channel)
            for m in reg.meters.values() if m.source]
    assert len(keys) == len(set(keys))  # device ids stay unique across copies
    added = [m for m in reg.meters.values() if m.meter_id.startswith("x")]
    assert {m.source.format for m in added if m.source} == {"tasmota", "sparkplug"}
    assert all(m.parent_id is not None and m.parent_id.startswith("hc-grid-main")
               for m in added)


def test_fewer_meters_keeps_parents() -> None:
    base = load_registry(profile_path("industrial_park"))
    small = scale_registry(base, meters_per_site=8)
    assert len(small.meters) == 8
    assert all(m.parent_id is None or m.parent_id in small.meters
               for m in small.meters.values())
    same = scale_registry(base)
    assert registry_document(same) == registry_document(base)


def test_dry_run_needs_no_broker(capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = run_cli(["--profile", "scenic_area", "--count", "5", "--dry-run",
                          "--vendor-extras", *BASE])
    assert rc == 0 and report is not None and not report.acknowledged
    out = capsys.readouterr().out
    assert "dry run, nothing sent" in out and "visitors bm-scenic: 2026-05-04" in out
    assert report.visitors["bm-scenic"]["2026-05-04"] > 0
    assert NullPublisher().messages == 0


def test_gen1_at_accelerated_speed_is_muted_or_flagged() -> None:
    # Gen1 carries no time: ingest would stamp a backfill's readings with the wall clock
    rc, report, fake = cli(["--profile", "campus", "--count", "2", *BASE])
    assert rc == 0 and report is not None
    assert "shelly_gen1" not in report.per_format
    assert not any(t.startswith("shellies/") for t, _, _ in fake.sent)
    assert any("hc-campus/gw-dorm (shelly_gen1)" in w for w in report.warnings)
    assert report.gateways == 6
    rc, report, fake = cli(["--profile", "campus", "--count", "2", "--timeless", "send", *BASE])
    assert report is not None and report.per_format["shelly_gen1"].readings == 2 * 3
    assert any("Shelly Gen1" in w and "--speed 1" in w for w in report.warnings)
