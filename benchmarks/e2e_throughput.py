"""End-to-end throughput: MQTT -> ingest -> Kafka -> faust -> PostgreSQL, on loopback.

Prints, in one run on the same machine:

1. ceilings: publish only (the payloads to a topic nobody subscribes to), Kafka produce and
   consume of the same records (one per message), and COPY of interval rows into PostgreSQL;
2. the pipeline at full speed: from the first publish until every interval is *final*
   (``measured``) in ``energy_intervals`` with its two emission rows and every reading is in the
   ``readings`` table; the totals are checked exactly against the registers published;
3. CPU per reading [µs] of every process (ingest, each stream worker, Kafka, PostgreSQL and
   Mosquitto, from ``/proc/<pid>/stat``) and a line ``TOTAL ... µs/reading`` summed over ingest,
   workers, Kafka and PostgreSQL; their resident memory;
4. publish-to-row latency (p50/p95/p99) at a steady rate: a round (one message per gateway) is
   published every ``meters / rate`` seconds and its time of arrival in ``readings`` is polled
   on one meter per gateway;
5. restart recovery: the stream workers are stopped and started again, and the time until the
   next round is in the database is printed (group join + table recovery + catch-up): once on
   the machine's local state ("warm": RocksDB files plus the changelog written since), once on
   an empty state folder ("cold": a machine without local state recovers the whole changelog).

Uses the services of the current settings (``nzc services up``; set ``NZC_*`` ports to share a
machine) with a generated registry (ids unique per run), and starts its own workers. Bounded:
a fixed number of messages, a time limit on every wait. Polls are cheap (primary-key and
time-index lookups); one full check at the end.

    .venv/bin/python benchmarks/e2e_throughput.py --meters 1000 --gateways 20 --rounds 61
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.records import ReadingBatch, ReadingRecord, decode, encode
from core.settings import Settings
from db.migrate import apply_migrations
from nzc.cli_gateways import refresh_broker
from nzc.procs import log_path, start_ingest_ready, start_worker, stop_worker
from nzc.services import manager
from simulators.publisher import MqttPublisher

MIN_MS = 60_000
INTERVAL_MS = 900_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the load ------------------------------------------------------------------------------

class Load:
    """A registry of ``meters`` electricity meters on ``gateways`` gateways, and per round one
    batch message per gateway (1-minute registers, starting on an interval boundary)."""

    def __init__(self, run: str, meters: int, gateways: int, rounds: int, extra: int) -> None:
        self.site = f"bench-{run}"
        self.meters, self.gateways, self.rounds = meters, gateways, rounds
        now = int(time.time() * 1000)
        # every round in the past (the clock-skew check), the first on an interval boundary
        self.t0 = now - now % INTERVAL_MS - ((rounds + extra) // 15 + 2) * INTERVAL_MS

    def meter(self, i: int) -> str:
        return f"{self.site}-m{i}"

    def register(self, i: int, k: int) -> float:
        return 1000.0 + i + k * (1 + i % 7) * 0.5

    def registry(self) -> dict[str, Any]:
        return {"sites": [{"id": self.site, "name": "benchmark site", "type": "park",
                           "province": "sichuan", "city": "Chengdu", "baseline_year": 2022,
                           "meters": [{"id": self.meter(i), "carrier": "grid_import",
                                       "unit": "kWh", "gateway": f"g{i % self.gateways}",
                                       "register_max": 1e9, "max_rate_per_h": 10_000}
                                      for i in range(self.meters)]}]}

    def ts(self, k: int) -> int:
        return self.t0 + k * MIN_MS

    def round(self, k: int) -> list[tuple[str, bytes]]:
        out = []
        for g in range(self.gateways):
            batch = [{"meter": self.meter(i), "ts": self.ts(k), "register": self.register(i, k),
                      "unit": "kWh"} for i in range(g, self.meters, self.gateways)]
            out.append((f"nzc/v1/{self.site}/g{g}/readings",
                        json.dumps({"readings": batch}).encode()))
        return out

    def sample(self) -> list[str]:
        """One meter per gateway: a round is in when these are."""
        return [self.meter(g) for g in range(min(self.gateways, self.meters))]


def publish(s: Settings, msgs: list[tuple[str, bytes]], prefix: str = "") -> float:
    """Publish ``msgs`` at QoS 1 and wait for every PUBACK [s]: as each topic's gateway, or,
    with a ``prefix`` (the publish-only baseline, which no subscriber reads), as the health
    probe under its own ``nzc/health/`` topics (the ACL allows nothing else)."""
    from core.mqtt_client import stored_auth
    from core.mqtt_identities import HEALTH_USER

    auth = stored_auth(s, HEALTH_USER) if prefix else None
    t = time.perf_counter()
    with MqttPublisher(s.mqtt_host, s.mqtt_port, auth=auth, settings=s) as pub:
        for topic, payload in msgs:
            pub.publish(prefix + topic, payload)
    return time.perf_counter() - t


# --- ceilings ------------------------------------------------------------------------------

def kafka_ceiling(s: Settings, load: Load, rounds: int) -> tuple[float, float, int]:
    """Produce then consume one ReadingBatch record per message; (produce s, consume s, n)."""
    topic = f"bench.ceiling.{load.site}"
    records = []
    for k in range(rounds):
        for g in range(load.gateways):
            rs = [ReadingRecord(load.meter(i), load.site, load.ts(k), "register",
                                load.register(i, k), "kWh", None, load.ts(k),
                                f"nzc/v1/{load.site}/g{g}/readings")
                  for i in range(g, load.meters, load.gateways)]
            records.append((f"{load.site}/g{g}".encode(), encode(ReadingBatch("k", rs))))

    async def run() -> tuple[float, float]:
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5,
                                    max_batch_size=1024 * 1024, max_request_size=8 << 20)
        await producer.start()
        try:
            t = time.perf_counter()
            futs = [await producer.send(topic, key=k, value=v) for k, v in records]
            await asyncio.gather(*futs)
            produce_s = time.perf_counter() - t
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    group_id=None, max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        try:
            t = time.perf_counter()
            n = 0
            deadline = time.monotonic() + 120
            while n < len(records) and time.monotonic() < deadline:
                got = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for msgs in got.values():
                    for m in msgs:
                        decode(m.value, ReadingBatch)  # as the stream worker does
                        n += 1
            consume_s = time.perf_counter() - t
        finally:
            await consumer.stop()
        return produce_s, consume_s

    p, c = asyncio.run(run())
    return p, c, sum(load.meters for _ in range(rounds))


def changelog_sizes(s: Settings, prefix: str) -> list[int]:
    """Size [bytes] of the newest changelog value of every meter whose id starts ``prefix``."""
    topic = "nzc-stream-meter_state-changelog"

    async def run() -> list[int]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        last: dict[bytes, int] = {}
        try:
            deadline = time.monotonic() + 120
            while not consumer.assignment() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            tps = list(consumer.assignment())
            ends = await consumer.end_offsets(tps)
            key_prefix = json.dumps(prefix)[:-1].encode()
            while time.monotonic() < deadline:
                behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                got = await consumer.getmany(timeout_ms=500, max_records=20_000)
                for msgs in got.values():
                    for m in msgs:
                        if m.key and m.key.startswith(key_prefix) and m.value is not None:
                            last[m.key] = len(m.value)
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer.stop()
        return list(last.values())

    return asyncio.run(run())


def copy_ceiling(s: Settings, n: int) -> float:
    """COPY ``n`` interval-like rows into a temporary table, then upsert them into another
    temporary table with a primary key [s]."""
    rows = [(f"m{i % 1000}", i // 1000, 900, "s", "grid_import", 1.5, "kWh", 0.1, 900.0,
             "measured", 0.0, 0.0) for i in range(n)]
    with psycopg.connect(s.database_url) as conn:
        conn.execute("CREATE TEMP TABLE st (meter_id text, k int, interval_s int, site_id text,"
                      " carrier text, quantity float8, unit text, tce float8, covered_s float8,"
                      " quality text, eq float8, es float8)")
        conn.execute("CREATE TEMP TABLE tgt (LIKE st, PRIMARY KEY (meter_id, k))")
        t = time.perf_counter()
        with conn.cursor().copy("COPY st FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        conn.execute("INSERT INTO tgt SELECT * FROM st ON CONFLICT (meter_id, k) DO UPDATE SET"
                     " quantity = excluded.quantity")
        conn.commit()
        return time.perf_counter() - t


# --- processes -----------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int, int]:
    """(utime + stime, cutime + cstime) [ticks] and RSS [kB] of ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0, 0
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]), rss


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


class Cpu:
    """CPU time per named process group: own time, plus exited children's (PostgreSQL)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def sample(self) -> dict[str, tuple[float, int]]:
        out = {}
        for name, pids in self.groups.items():
            ticks, rss = 0, 0
            for pid in pids:
                own, children, r = _stat(pid)
                ticks += own + (children if name == "postgres" else 0)
                rss += r
                if name == "postgres":
                    for c in _children(pid):
                        own_c, _cc, r_c = _stat(c)
                        ticks += own_c
                        rss += r_c
            out[name] = (ticks / CLK_TCK, rss)
        return out


def _count(conn: psycopg.Connection[Any], sql: str, params: Any) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def wait_round(conn: psycopg.Connection[Any], sample: list[str], ts: int, timeout_s: float,
               poll_s: float = 0.02) -> float | None:
    """Seconds until the readings of one round (``sample``: one meter per gateway) are in."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout_s:
        if _count(conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s)"
                  " AND ts = to_timestamp(%s / 1000.0)", (sample, ts)) >= len(sample):
            return time.perf_counter() - t
        time.sleep(poll_s)
    return None


def wait_committed(s: Settings, timeout_s: float = 60.0) -> bool:
    """Wait until the stream's consumer group has committed every record of
    ``readings.valid.v1`` (bounded): the workers are then stopped with nothing left for the
    next consumers of the group (the demo's workers, whose registry lacks the benchmark's
    meters, would reject a replay as ``unknown_meter``)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from core.settings import TOPIC_READINGS

    async def run() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            tps = [TopicPartition(TOPIC_READINGS, p) for p in range(s.topic_partitions)]
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                done = await admin.list_consumer_group_offsets("nzc-stream", partitions=tps)
                if all(done.get(tp) is not None and done[tp].offset >= ends[tp] for tp in tps):
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(run())


def _recovery_line(path: Path, since: float | None = None) -> str:
    """Group joins and table recovery of one worker, from its info log: the time of every
    assignment and "Restore complete" / "Worker ready" line, after the first assignment or
    after ``since`` [epoch s] (the restart)."""
    from datetime import datetime

    stamps: list[tuple[str, datetime]] = []
    for line in path.read_text(errors="replace").splitlines():
        for what in ("Setting newly assigned partitions", "Restore complete", "Worker ready"):
            if what in line and line.startswith("["):
                with contextlib.suppress(ValueError):
                    stamps.append((what, datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")))
    if not stamps:
        return "(no recovery lines in the log)"
    first = stamps[0][1].timestamp() if since is None else since
    return ", ".join(f"{w} +{t.timestamp() - first:.1f} s" for w, t in stamps[:8])


def _start_profiles(folder: Path, groups: dict[str, list[int]]) -> list[subprocess.Popen[bytes]]:
    folder.mkdir(parents=True, exist_ok=True)
    exe = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
    spy = str(exe) if exe.exists() else "py-spy"
    return [subprocess.Popen([spy, "record", "--format", "raw", "--rate", "200", "-o",
                              str(folder / f"{name}.txt"), "-p", str(pids[0])],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pids in groups.items() if name == "ingest" or name.startswith("stream")]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=61,
                    help="1-minute rounds at full speed; 15k+1 so every interval is whole")
    ap.add_argument("--workers", type=int, default=2, help="stream worker processes")
    ap.add_argument("--steady-rate", type=float, default=5000, help="readings/s for latency")
    ap.add_argument("--steady-s", type=float, default=20)
    ap.add_argument("--skip-ceilings", action="store_true")
    ap.add_argument("--timeout-s", type=float, default=900)
    ap.add_argument("--profile-dir", type=Path, default=None,
                    help="record py-spy profiles (collapsed stacks) of the workers during the "
                         "full-speed phase into this folder (needs py-spy on PATH or in .venv)")
    a = ap.parse_args()
    if (a.rounds - 1) % 15:
        ap.error("--rounds must be 15k+1 (whole 15-minute intervals)")
    # a SIGTERM (e.g. from `timeout`) still stops the workers this run started (finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:6]
    s = Settings.from_env()
    manager.up(s)
    apply_migrations(s.database_admin_url)
    steady_rounds = max(1, int(a.steady_rate * a.steady_s / a.meters))
    load = Load(run, a.meters, a.gateways, a.rounds, extra=steady_rounds + 20)
    reg_path = s.state_dir / f"bench-registry-{run}.yaml"
    reg_path.write_text(yaml.safe_dump(load.registry()))
    demo_settings = s
    os.environ["NZC_REGISTRY"] = str(reg_path)
    s = Settings.from_env()
    refresh_broker(s)  # MQTT users and ACL of the benchmark's gateways
    n_readings = a.meters * a.rounds
    n_intervals = a.meters * (a.rounds - 1) // 15
    print(f"load: {a.meters} meters / {a.gateways} gateways, {a.rounds} rounds of 1-minute "
          f"registers = {n_readings} readings in {a.gateways * a.rounds} messages "
          f"({a.meters // a.gateways} readings/message); {s.topic_partitions} partitions, "
          f"{a.workers} stream workers; load average {os.getloadavg()[0]:.2f}")

    msgs = [m for k in range(a.rounds) for m in load.round(k)]
    if not a.skip_ceilings:
        base_s = publish(s, msgs, prefix="nzc/health/bench/")
        print(f"ceiling publish only:       {n_readings / base_s:9.0f} readings/s "
              f"({len(msgs) / base_s:.0f} msg/s)")
        p_s, c_s, n = kafka_ceiling(s, load, a.rounds)
        print(f"ceiling Kafka produce:      {n / p_s:9.0f} readings/s  consume+decode: "
              f"{n / c_s:9.0f} readings/s (one record per message)")
        copy_s = copy_ceiling(s, 50_000)
        print(f"ceiling COPY + upsert:      {50_000 / copy_s:9.0f} rows/s")

    status = manager.status(s)
    cold = s.state_dir / f"bench-cold-state-{run}"  # the cold restart's empty local state
    streams = [start_worker("stream", s, log_name=f"bench-stream{w}-{run}")
               for w in range(a.workers)]
    ingest = start_ingest_ready(s, log_name=f"bench-ingest-{run}")
    procs: list[subprocess.Popen[bytes]] = [*streams, ingest]
    groups = {"ingest": [ingest.pid], **{f"stream{w}": [p.pid] for w, p in enumerate(streams)},
              "kafka": [status["kafka"]["pid"] or 0], "postgres": [status["postgres"]["pid"] or 0],
              "mosquitto": [status["mosquitto"]["pid"] or 0]}
    cpu = Cpu(groups)
    sample = load.sample()
    try:
        with psycopg.connect(s.database_reader_url, autocommit=True) as conn:
            # warm-up: the first round, until it is in (workers joined, tables recovered)
            t = time.perf_counter()
            publish(s, msgs[: a.gateways])
            if wait_round(conn, sample, load.ts(0), a.timeout_s, 0.2) is None:
                print("warm-up round never arrived")
                return 1
            print(f"workers ready after {time.perf_counter() - t:.1f} s")

            spies = _start_profiles(a.profile_dir, groups) if a.profile_dir else []
            before = cpu.sample()
            t0 = time.perf_counter()
            pub_s = publish(s, msgs[a.gateways:])
            last_start = load.ts(a.rounds - 1) - INTERVAL_MS
            done_s = None
            while time.perf_counter() - t0 < a.timeout_s:
                # cheap: the rows of the last interval start (time index) and the last round
                final = _count(conn, "SELECT count(*) FROM energy_intervals WHERE interval_start"
                               " = to_timestamp(%s / 1000.0) AND site_id = %s AND quality ="
                               " 'measured'", (last_start, load.site))
                if final >= a.meters and _count(
                        conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s) AND ts ="
                        " to_timestamp(%s / 1000.0)", (sample, load.ts(a.rounds - 1))) >= len(
                        sample):
                    done_s = time.perf_counter() - t0
                    break
                time.sleep(0.1)
            after = cpu.sample()
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            if done_s is None:
                print(f"incomplete after {a.timeout_s} s")
                return 1
            # one full check: every interval final, exact totals, every reading once
            like = f"{load.site}-%"
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE quality = 'measured'), sum(quantity)"
                " FROM energy_intervals WHERE site_id = %s", (load.site,)).fetchone()
            assert row is not None
            expected_total = sum(load.register(i, a.rounds - 1) - load.register(i, 0)
                                 for i in range(a.meters))
            n_em = _count(conn, "SELECT count(*) FROM emission_intervals WHERE site_id = %s",
                          (load.site,))
            n_rd = _count(conn, "SELECT count(*) FROM readings WHERE meter_id LIKE %s", (like,))
            ok = (row[0] == n_intervals and row[1] == n_intervals and n_em == 2 * n_intervals
                  and n_rd == n_readings
                  and abs(float(row[2]) - expected_total) <= 1e-9 * expected_total)
            print(f"check: intervals {row[0]} (measured {row[1]}) of {n_intervals}, emission rows"
                  f" {n_em} of {2 * n_intervals}, readings {n_rd} of {n_readings}, total "
                  f"{float(row[2]):.6f} kWh vs {expected_total:.6f}: {'OK' if ok else 'WRONG'}")
            measured = n_readings - a.meters
            print(f"pipeline publish:           {measured / pub_s:9.0f} readings/s")
            print(f"pipeline end to end:        {measured / done_s:9.0f} readings/s "
                  f"({done_s:.2f} s until every interval was final)")
            if not a.skip_ceilings:
                print(f"ratio end to end / publish only: "
                      f"{(measured / done_s) / (n_readings / base_s):.3f}")
            total = 0.0
            for name in groups:
                us = (after[name][0] - before[name][0]) * 1e6 / measured
                if name != "mosquitto":
                    total += us
                print(f"cpu {name:10s} {us:8.1f} µs/reading   rss {after[name][1] / 1024:7.1f} MiB")
            sizes = changelog_sizes(s, f"{load.site}-")
            if sizes:
                print(f"meter state (newest changelog value, MeterState.to_bytes): mean "
                      f"{statistics.mean(sizes) / 1024:.2f} KiB, max {max(sizes) / 1024:.2f} KiB "
                      f"over {len(sizes)} meters (lateness {s.lateness_s} s, 1-minute readings)")
            print(f"TOTAL {total:.1f} µs/reading (ingest + stream workers + Kafka + PostgreSQL;"
                  f" load average {os.getloadavg()[0]:.2f})")

            # steady rate: one round every meters/rate seconds
            period = a.meters / a.steady_rate
            lat = []
            k0 = a.rounds
            nxt = time.perf_counter()
            with MqttPublisher(s.mqtt_host, s.mqtt_port) as pub:
                pending: list[tuple[int, float]] = []
                for k in range(k0, k0 + steady_rounds):
                    now = time.perf_counter()
                    if now < nxt:
                        time.sleep(nxt - now)
                    nxt += period
                    for topic, payload in load.round(k):
                        pub.publish(topic, payload)
                    pending.append((k, time.perf_counter()))
                    while pending and _count(
                            conn, "SELECT count(*) FROM readings WHERE meter_id = ANY(%s) AND ts"
                            " = to_timestamp(%s / 1000.0)", (sample, load.ts(pending[0][0]))
                    ) >= len(sample):
                        lat.append(time.perf_counter() - pending.pop(0)[1])
                for k, t_pub in pending:
                    w = wait_round(conn, sample, load.ts(k), 60)
                    if w is not None:
                        lat.append(time.perf_counter() - t_pub)
            if len(lat) >= 2:
                q = statistics.quantiles(lat, n=100)
                print(f"latency publish-to-row at {a.steady_rate:.0f} readings/s "
                      f"({len(lat)} rounds): p50 {q[49]:.3f} s  p95 {q[94]:.3f} s  "
                      f"p99 {q[98]:.3f} s  (a round's rows are polled, so +<=20 ms)")

            # restart recovery: (1) the same workers again, on the machine's local state
            # (RocksDB: the changelog written since); (2) on an empty state folder, as on a
            # machine without the local state (the whole changelog)
            k = k0 + steady_rounds
            for label, env in (("warm", None), ("cold", {"NZC_STREAM_STATE_DIR": str(cold)})):
                for p in streams:
                    stop_worker(p)
                t, t_wall = time.perf_counter(), time.time()
                names = [f"bench-stream{w}-{run}-{label}" for w in range(a.workers)]
                streams = [start_worker("stream", s, log_name=n, env=env,
                                        extra_args=["--loglevel", "info"]) for n in names]
                procs = [*streams, ingest]
                publish(s, load.round(k))
                w = wait_round(conn, sample, load.ts(k), a.timeout_s, 0.1)
                total_s = time.perf_counter() - t
                k += 1
                what = ("local state + the changelog since" if label == "warm"
                        else "empty local state: the whole changelog")
                print(f"restart ({label}, {what}): {a.workers} stream workers stopped and "
                      f"started again; the next round was in the database after {total_s:.1f} s "
                      f"({a.meters} meters)"
                      if w is not None else f"restart ({label}): the next round never arrived")
                for name in names:
                    print(f"  {name} (after the restart): "
                          f"{_recovery_line(log_path(s, name), t_wall)}")
            if not wait_committed(s):
                print("warning: the workers had not committed every reading after 60 s; the "
                      "next consumers of group nzc-stream will replay the rest")
    finally:
        for p in procs:
            stop_worker(p)
        reg_path.unlink(missing_ok=True)
        shutil.rmtree(cold, ignore_errors=True)
        refresh_broker(demo_settings)  # the demo's gateways may publish again
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
