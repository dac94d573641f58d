"""What the simulator publishes is what ingest reads: every sample registry's messages go
through ingest's decoders and registry mapping (ingest.validate.decode_message, no broker)
and come back as the same meters, times and values; injected faults come back as the
rejections the report predicts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbon.registry import Registry
from core.registry_yaml import load_registry
from ingest.decoders.sparkplug import SparkplugState
from ingest.schema import DeadLetter, ReadingRecord
from ingest.validate import decode_message
from simulators.faults import FaultConfig
from simulators.scale import SITES_DIR
from simulators.scenario import Outgoing, Scenario

START = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)
SAMPLES = sorted(p.name for p in SITES_DIR.glob("*.yaml"))
# register resolution of each format [kWh] (Neuron: DL/T 645 0.01 kWh; Shelly Wh; others)
TOLERANCE_KWH = {"neuron": 0.0101, "zigbee2mqtt": 0.0101, "tasmota": 0.00101,
                 "shelly_gen1": 0.00011, "shelly_gen2": 0.0000101}


def ingest(reg: Registry, sc: Scenario, rounds: int) -> tuple[
        list[Outgoing], list[ReadingRecord], list[DeadLetter]]:
    """Run the scenario and feed every message to ingest, received 0.5 s after its round."""
    state = SparkplugState()
    sent: list[Outgoing] = []
    records: list[ReadingRecord] = []
    dead: list[DeadLetter] = []
    for k in range(rounds):
        outs = sc.step() + (sc.finish() if k == rounds - 1 else [])
        received_ms = int(sc.time_of(k).timestamp() * 1000) + 500
        for o in outs:
            sent.append(o)
            r, d = decode_message(reg, o.topic, o.payload, received_ms=received_ms,
                                  max_clock_skew_s=300, sparkplug=state)
            records += r
            dead += d
    return sent, records, dead


@pytest.mark.parametrize("name", SAMPLES)
def test_every_reading_lands_with_its_meter_time_and_value(name: str) -> None:
    reg = load_registry(Path(SITES_DIR / name))
    sc = Scenario(reg, start=START, interval_s=60, seed=3)
    sent, records, dead = ingest(reg, sc, 12)
    # Sparkplug B NDEATH at the end marks its meters offline; nothing else is rejected
    assert {d.code for d in dead} <= {"device_offline"}
    assert all("NDEATH" in d.mqtt_topic for d in dead)
    expected = {}
    for o in sent:
        for r in o.message.carried:
            expected[(r.meter.meter_id, int(r.ts.timestamp() * 1000))] = (
                r.register * r.meter.to_canonical, o.format)
    assert len(records) == len(expected) == sc.report.clean_readings == 12 * len(reg.meters)
    by_meter: dict[str, list[ReadingRecord]] = {}
    for rec in records:
        by_meter.setdefault(rec.meter_id, []).append(rec)
    for mid, recs in by_meter.items():
        mine = sorted((ts, v, f) for (m, ts), (v, f) in expected.items() if m == mid)
        assert len(recs) == len(mine)
        for rec, (ts, value, fmt) in zip(recs, mine, strict=True):
            if fmt == "shelly_gen1":
                assert rec.ts_ms == ts + 500  # Gen1 carries no time: stamped on receipt
            else:
                assert rec.ts_ms == ts
            assert rec.value == pytest.approx(value, abs=TOLERANCE_KWH.get(fmt, 1e-9)), mid
            assert rec.site_id == reg.meters[mid].site_id


def test_injected_faults_come_back_as_predicted_rejections() -> None:
    reg = load_registry(SITES_DIR / "industrial_park.yaml")
    sc = Scenario(reg, start=START, interval_s=60, seed=5,
                  faults=FaultConfig({"malformed": 0.05, "clock_skew": 0.05, "offline": 0.01}))
    sent, records, dead = ingest(reg, sc, 100)
    codes = Counter(d.code for d in dead)
    f = sc.report.faults
    assert codes["malformed_json"] + codes["malformed_protobuf"] == f["malformed"].messages > 0
    skewed_intact = sum(o.readings for o in sent
                        if "clock_skew" in o.faults and "malformed" not in o.faults)
    assert codes["clock_skew"] == skewed_intact > 0
    assert len(records) == sc.report.clean_readings
    # a malformed Sparkplug B message is a lost sequence number for the decoder
    lost_sparkplug = sum(1 for o in sent if o.format == "sparkplug" and "malformed" in o.faults)
    gaps = sum(int(d.reason.split(": ")[1].split(" ")[0]) for d in dead
               if d.code == "sequence_gap")
    assert lost_sparkplug - 2 <= gaps <= lost_sparkplug  # the last of a node may go unseen
    # offline meters: Neuron reports read errors
    neuron_errors = sum(len(json.loads(o.payload)["errors"]) for o in sent
                        if o.format == "neuron" and "malformed" not in o.faults)
    assert codes["device_read_error"] == neuron_errors > 0
