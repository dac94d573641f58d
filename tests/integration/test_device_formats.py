"""End to end with vendor gateway formats: Tasmota, Shelly Gen2, Zigbee2MQTT, Neuron (DL/T 645)
and Sparkplug B publishers through the real broker, ingest, Kafka, the stream and PostgreSQL.

The Sparkplug B payloads are encoded by Eclipse Tahu's ``sparkplug-payload`` (npm, run by
``tests/node/encode_sparkplug.js``), not by our code. Expected interval energies come from
boundary interpolation (``expected.py``), in each vendor's own unit converted here by hand.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import REPO, Pipeline, publish_payloads, query, wait_for
from .expected import interval_quantities
from .test_pipeline_e2e import energy_rows

pytestmark = pytest.mark.services
MIN = 60_000
INTERVAL = 900_000
SHANGHAI = timedelta(hours=8)
SHELLY = "shellypro3em-c8f09e8a1b2c"
GROUP, NODE = "nzc-test", "edge-1"


def _base_ms() -> int:
    now = int(time.time() * 1000)
    return now - now % INTERVAL - 3 * 3600_000


def _local(ms: int) -> str:
    """Tasmota's ``Time``: Asia/Shanghai wall-clock time without an offset."""
    return (datetime.fromtimestamp(ms / 1000, UTC) + SHANGHAI).replace(tzinfo=None).isoformat()


def _sparkplug(messages: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Encode with Eclipse Tahu's sparkplug-payload through node."""
    script = REPO / "tests" / "node" / "encode_sparkplug.js"
    assert (REPO / "tests" / "node" / "node_modules" / "sparkplug-payload").is_dir(), (
        "tests/node/node_modules is missing: run scripts/setup (npm ci in tests/node)")
    out = subprocess.run(["node", str(script)], input=json.dumps(messages).encode(),
                         capture_output=True, check=True, timeout=60)
    return [(m["topic"], base64.b64decode(m["payload_b64"])) for m in json.loads(out.stdout)]


def test_vendor_formats_end_to_end(pipeline: Pipeline) -> None:
    s = pipeline.settings
    t0 = _base_ms()
    times = [t0 + 7 * MIN + k * 10 * MIN for k in range(10)]
    msgs: list[tuple[str, bytes]] = []

    # Tasmota [kWh], Time in the site's local time without offset
    tas = [(t, 2000.0 + 3.5 * k + (0.25 if k % 3 == 0 else 0.0)) for k, t in enumerate(times)]
    for t, v in tas:
        msgs.append(("tele/tasmota-pump/SENSOR", json.dumps(
            {"Time": _local(t), "ENERGY": {"TotalStartTime": "2025-01-01T00:00:00",
                                           "Total": v, "Yesterday": 12.0, "Today": 1.5,
                                           "Power": 210, "Voltage": 229, "Current": 0.9}}
        ).encode()))
    # a meter the registry does not map, behind a mapped Neuron node (the broker's ACL lets
    # that gateway publish for its node; a device topic of no gateway is refused there:
    # tests/integration/test_security.py)
    msgs.append(("/neuron/north-1/dlt645-bus1/energy", json.dumps(
        {"timestamp": t0, "node": "dlt645-bus1", "group": "energy",
         "values": {"239999999999#00-00-00-00": 1.0}, "errors": {}}).encode()))

    # Shelly Pro 3EM [Wh], NotifyStatus with ts [s]
    sh_imp = [(t, 5_000_000.0 + 1800.0 * k) for k, t in enumerate(times)]
    sh_exp = [(t, 10_000.0 + 40.0 * k * k) for k, t in enumerate(times)]
    for (t, imp), (_, exp) in zip(sh_imp, sh_exp, strict=True):
        msgs.append((f"{SHELLY}/events/rpc", json.dumps(
            {"src": SHELLY, "dst": f"{SHELLY}/events", "method": "NotifyStatus",
             "params": {"ts": t / 1000, "emdata:0": {
                 "id": 0, "a_total_act_energy": imp / 3, "b_total_act_energy": imp / 3,
                 "c_total_act_energy": imp / 3, "total_act": imp, "total_act_ret": exp}}}
        ).encode()))

    # Zigbee2MQTT [kWh] with last_seen, Neuron DL/T 645 [kWh] (values format) with timestamp
    z2m = [(t, 88.0 + 0.8 * k) for k, t in enumerate(times[:6])]
    for t, v in z2m:
        msgs.append(("zigbee2mqtt/pump-room-meter", json.dumps(
            {"energy": v, "power": 500, "last_seen": datetime.fromtimestamp(
                t / 1000, UTC).isoformat()}).encode()))
    neu = [(t, 10452.31 + 6.25 * k) for k, t in enumerate(times[:6])]
    for t, v in neu:
        msgs.append(("/neuron/north-1/dlt645-bus1/energy", json.dumps(
            {"timestamp": t, "node": "dlt645-bus1", "group": "energy",
             "values": {"230100004521#00-00-00-00": v, "230100004521#02-01-01-00": 229.9},
             "errors": {}}).encode()))

    # Sparkplug B: meter-1 reports Wh (engUnit), meter-2 has no unit (the meter's kWh)
    spb1 = [(t, 7_000_000.0 + 2500.0 * k) for k, t in enumerate(times)]
    spb2 = [(t, 640.0 + 1.75 * k) for k, t in enumerate(times)]
    node = f"spBv1.0/{GROUP}/{{}}/{NODE}"
    spb: list[dict[str, Any]] = [
        {"topic": node.format("NBIRTH"), "payload": {"timestamp": t0, "seq": 0, "metrics": [
            {"name": "bdSeq", "type": "UInt64", "value": 0},
            {"name": "Node Control/Rebirth", "type": "Boolean", "value": False}]}},
        {"topic": node.format("DBIRTH") + "/meter-1", "payload": {
            "timestamp": times[0], "seq": 1, "metrics": [
                {"name": "Energy/Import", "alias": 1, "type": "Double", "value": spb1[0][1],
                 "timestamp": times[0],
                 "properties": {"engUnit": {"type": "String", "value": "Wh"}}},
                {"name": "Voltage", "alias": 2, "type": "Float", "value": 230.5,
                 "timestamp": times[0]}]}},
        {"topic": node.format("DBIRTH") + "/meter-2", "payload": {
            "timestamp": times[0], "seq": 2, "metrics": [
                {"name": "Energy/Import", "alias": 3, "type": "Double", "value": spb2[0][1],
                 "timestamp": times[0]}]}},
    ]
    seq = 2
    for k in range(1, len(times)):
        seq += 1
        if k == 6:
            seq += 1  # one message lost on the way: a sequence gap is reported
        spb.append({"topic": node.format("DDATA") + "/meter-1", "payload": {
            "timestamp": times[k], "seq": seq, "metrics": [
                {"alias": 1, "type": "Double", "value": spb1[k][1], "timestamp": times[k]}]}})
        seq += 1
        spb.append({"topic": node.format("DDATA") + "/meter-2", "payload": {
            "timestamp": times[k], "seq": seq, "metrics": [
                {"alias": 3, "type": "Double", "value": spb2[k][1], "timestamp": times[k]}]}})
    spb.append({"topic": node.format("DDEATH") + "/meter-2",
                "payload": {"timestamp": times[-1] + MIN, "seq": seq + 1, "metrics": []}})
    spb.append({"topic": node.format("NDEATH"), "payload": {
        "timestamp": times[-1] + 2 * MIN, "metrics": [{"name": "bdSeq", "type": "UInt64",
                                                        "value": 0}]}})
    msgs += _sparkplug(spb)

    publish_payloads(s, msgs)

    expected = {
        "fmt-tas": interval_quantities(tas, INTERVAL),
        "fmt-sh2": {k: v / 1000 for k, v in interval_quantities(sh_imp, INTERVAL).items()},
        "fmt-sh2-ret": {k: v / 1000 for k, v in interval_quantities(sh_exp, INTERVAL).items()},
        "fmt-z2m": interval_quantities(z2m, INTERVAL),
        "fmt-neu": interval_quantities(neu, INTERVAL),
        "fmt-spb": {k: v / 1000 for k, v in interval_quantities(spb1, INTERVAL).items()},
        "fmt-spb2": interval_quantities(spb2, INTERVAL),
    }

    def settled() -> bool:
        pipeline.assert_alive()
        for meter, exp in expected.items():
            got = energy_rows(s, meter)
            if set(got) != set(exp) or any(abs(got[k][0] - exp[k]) > 1e-6 for k in exp):
                return False
        return True

    wait_for(settled, 120, "all intervals of the device-format meters")
    time.sleep(2)  # anything still in flight would show up as a difference below
    for meter, exp in expected.items():
        got = energy_rows(s, meter)
        assert set(got) == set(exp), meter
        for start, qty in exp.items():
            assert got[start][0] == pytest.approx(qty, rel=1e-9, abs=1e-9), (meter, start)
    # interior intervals fully measured: the Tasmota local times were placed right (a wrong
    # zone would shift every reading by hours and change which intervals exist)
    assert energy_rows(s, "fmt-tas")[t0 + INTERVAL][2] == "measured"
    counts = dict(query(s, "SELECT meter_id, count(*) FROM readings WHERE meter_id LIKE"
                           " 'fmt-%%' GROUP BY meter_id"))
    assert counts == {"fmt-tas": 10, "fmt-sh2": 10, "fmt-sh2-ret": 10, "fmt-z2m": 6,
                      "fmt-neu": 6, "fmt-spb": 10, "fmt-spb2": 10}

    dead = query(s, "SELECT code, reason, meter_id, mqtt_topic FROM dead_letters"
                    " WHERE stage = 'ingest' AND (mqtt_topic LIKE 'spBv1.0/%%'"
                    " OR mqtt_topic LIKE 'tele/%%' OR mqtt_topic LIKE '%%/events/rpc'"
                    " OR mqtt_topic LIKE 'zigbee2mqtt/%%' OR mqtt_topic LIKE '/neuron/%%')")
    by_code: dict[str, list[tuple[Any, ...]]] = {}
    for d in dead:
        by_code.setdefault(d[0], []).append(d)
    assert set(by_code) == {"unmapped_device", "sequence_gap", "device_offline"}, dead
    (unmapped,) = by_code["unmapped_device"]
    assert "239999999999" in unmapped[1]
    assert unmapped[3] == "/neuron/north-1/dlt645-bus1/energy"
    (gap,) = by_code["sequence_gap"]
    assert "1 message(s)" in gap[1] and gap[3] == node.format("DDATA") + "/meter-1"
    offline = sorted((d[2], d[3]) for d in by_code["device_offline"])
    assert offline == sorted([("fmt-spb", node.format("NDEATH")),
                              ("fmt-spb2", node.format("NDEATH")),
                              ("fmt-spb2", node.format("DDEATH") + "/meter-2")])
