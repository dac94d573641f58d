"""End-to-end throughput: MQTT -> ingest -> Kafka -> faust -> PostgreSQL, on loopback.

Prints messages/s and readings/s for (a) the baseline: the same payloads published to a topic
nobody subscribes to (what the publisher and Mosquitto alone can do), and (b) the pipeline:
from the first publish until every reading is in the ``readings`` table and every interval in
``energy_intervals``; and the ratio of (b) to (a). Uses the demo's services (``nzc services
up``) with meters of its own (a generated registry, ids unique per run), and starts its own
ingest and stream workers. Bounded: a fixed number of messages, and a time limit on the wait.

    .venv/bin/python benchmarks/e2e_throughput.py --meters 200 --gateways 20 --rounds 100
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import psycopg
import yaml

from nzc.procs import start_ingest_ready, start_worker, stop_worker
from nzc.services import manager
from nzc.settings import Settings
from simulators.publisher import MqttPublisher

MIN_MS = 60_000


def build(
    run: str, meters: int, gateways: int, rounds: int
) -> tuple[dict, list[tuple[str, bytes]]]:
    """A registry of ``meters`` electricity meters on ``gateways`` gateways, and one batch
    message per gateway and round (1-minute registers)."""
    site = f"bench-{run}"
    reg = {"sites": [{"id": site, "name": "benchmark site", "type": "park",
                      "province": "sichuan", "city": "Chengdu", "baseline_year": 2022,
                      "meters": [{"id": f"{site}-m{i}", "carrier": "grid_import", "unit": "kWh",
                                  "gateway": f"g{i % gateways}", "register_max": 1e9,
                                  "max_rate_per_h": 10_000} for i in range(meters)]}]}
    now = int(time.time() * 1000)
    t0 = now - now % MIN_MS - rounds * MIN_MS
    msgs = []
    for k in range(rounds):
        for g in range(gateways):
            batch = [{"meter": f"{site}-m{i}", "ts": t0 + k * MIN_MS,
                      "register": 1000.0 + i + k * (1 + i % 7) * 0.5, "unit": "kWh"}
                     for i in range(g, meters, gateways)]
            msgs.append((f"nzc/v1/{site}/g{g}/readings", json.dumps({"readings": batch}).encode()))
    return reg, msgs


def publish(s: Settings, msgs: list[tuple[str, bytes]], baseline: bool) -> float:
    t = time.perf_counter()
    with MqttPublisher(s.mqtt_host, s.mqtt_port) as pub:
        for topic, payload in msgs:
            pub.publish(f"bench/baseline/{topic}" if baseline else topic, payload)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--timeout-s", type=float, default=600)
    a = ap.parse_args()
    run = f"{int(time.time()) % 10**6}"
    s = Settings.from_env()
    manager.up(s)
    reg, msgs = build(run, a.meters, a.gateways, a.rounds)
    reg_path = s.state_dir / f"bench-registry-{run}.yaml"
    reg_path.write_text(yaml.safe_dump(reg))
    os.environ["NZC_REGISTRY"] = str(reg_path)
    s = Settings.from_env()
    n_readings = a.meters * a.rounds
    n_intervals = a.meters * len({(t // 900_000) for t in
                                  range(0, (a.rounds - 1) * MIN_MS, MIN_MS)})
    print(f"payloads: {len(msgs)} messages, {n_readings} readings "
          f"({a.meters} meters / {a.gateways} gateways x {a.rounds} rounds)")

    base_s = publish(s, msgs, baseline=True)
    print(f"baseline (publish only):   {base_s:7.2f} s  {len(msgs) / base_s:8.0f} msg/s "
          f"{n_readings / base_s:9.0f} readings/s")

    stream = start_worker("stream", s, log_name=f"bench-stream-{run}")
    ingest = start_ingest_ready(s, log_name=f"bench-ingest-{run}")
    try:
        like = f"bench-{run}-%"
        # warm-up: the first round alone, until it is in the database (the stream worker has
        # joined its group and recovered its table), so that start-up is not in the figure
        warm, msgs = msgs[: a.gateways], msgs[a.gateways:]
        t_start = time.perf_counter()
        publish(s, warm, baseline=False)
        with psycopg.connect(s.database_reader_url, autocommit=True) as conn:
            while time.perf_counter() - t_start < a.timeout_s:
                row = conn.execute("SELECT count(*) FROM readings WHERE meter_id LIKE %s",
                                   (like,)).fetchone()
                if row and row[0] >= a.meters:
                    break
                time.sleep(0.2)
        print(f"workers ready (first round in the database) after "
              f"{time.perf_counter() - t_start:.1f} s")
        t0 = time.perf_counter()
        pub_s = publish(s, msgs, baseline=False)
        t_readings = t_intervals = None
        with psycopg.connect(s.database_reader_url, autocommit=True) as conn:
            while time.perf_counter() - t0 < a.timeout_s:
                r = conn.execute("SELECT count(*) FROM readings WHERE meter_id LIKE %s",
                                 (like,)).fetchone()
                e = conn.execute("SELECT count(*) FROM emission_intervals WHERE meter_id LIKE"
                                 " %s AND method = 'location'", (like,)).fetchone()
                now = time.perf_counter() - t0
                if t_readings is None and r and r[0] >= n_readings:
                    t_readings = now
                if t_intervals is None and e and e[0] >= n_intervals:
                    t_intervals = now
                if t_readings and t_intervals:
                    break
                time.sleep(0.2)
        if not (t_readings and t_intervals):
            print(f"incomplete after {a.timeout_s} s: readings {r}, intervals {e}")
            return 1
        total = max(t_readings, t_intervals)
        print(f"pipeline publish:          {pub_s:7.2f} s  {len(msgs) / pub_s:8.0f} msg/s "
              f"(ingest subscribed, acking after Kafka)")
        print(f"pipeline end to end:       {total:7.2f} s  {len(msgs) / total:8.0f} msg/s "
              f"{(n_readings - a.meters) / total:9.0f} readings/s  (readings table complete at "
              f"{t_readings:.2f} s, {n_intervals} emission intervals at {t_intervals:.2f} s)")
        ratio = ((n_readings - a.meters) / total) / (n_readings / base_s)
        print(f"ratio end-to-end / baseline readings/s: {ratio:.3f}")
    finally:
        stop_worker(ingest)
        stop_worker(stream)
        Path(reg_path).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
