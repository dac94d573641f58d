"""Run the park simulation and publish its readings over MQTT (``nzc simulate ...``).

Each *round* (every ``--interval-s`` seconds of simulated time, starting at ``--start``) publishes
one batch message per gateway, ``{"readings": [{"meter", "ts", "register", "unit"}, ...]}`` on
``nzc/v1/<site>/<gateway>/readings`` (``ingest.schema``), QoS 1. ``--speed`` is simulated seconds
per wall second (1 = real time, 0 or ``--fast`` = as fast as the broker acknowledges).
A bounded run needs ``--duration-s`` (rounds at ``start + k x interval`` up to and including
``start + duration``) and/or ``--count`` (number of rounds); ``--forever`` runs until SIGINT or
SIGTERM. The summary goes to standard output.

Note: ingest rejects readings too far in the future (``NZC_MAX_CLOCK_SKEW_S``): with a speed
above 1, start in the past (a backfill) so the simulated clock stays behind the wall clock.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from carbon.registry import Meter, Registry, RegistryError
from nzc.registry import load_registry
from nzc.settings import Settings, mqtt_topic
from simulators.profiles import ParkSimulation
from simulators.publisher import MqttPublisher, PublishError

__all__ = [
    "GatewayBatch",
    "Publisher",
    "build_batches",
    "format_ts",
    "gateway_topics",
    "main",
    "parse_start",
]


class Publisher(Protocol):
    """What :func:`main` needs from a publisher (:class:`simulators.publisher.MqttPublisher`)."""

    def connect(self, timeout_s: float = ...) -> None: ...
    def publish(self, topic: str, payload: bytes, readings: int = ...) -> None: ...
    def flush(self, timeout_s: float = ...) -> None: ...
    def close(self) -> None: ...


PublisherFactory = Callable[[str, int, int], Publisher]
"""``(host, port, max_inflight) -> Publisher``."""


@dataclass(frozen=True)
class GatewayBatch:
    """One message: ``readings`` readings of one gateway, ready to publish."""

    site_id: str
    gateway_id: str
    topic: str
    payload: bytes
    readings: int


def format_ts(t: datetime) -> str:
    """ISO 8601 UTC with a ``Z``; milliseconds only when the time has a fraction of a second."""
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def gateway_topics(registry: Registry) -> dict[tuple[str, str], str]:
    """``(site_id, gateway_id) -> MQTT topic`` for every gateway, in registry order."""
    out: dict[tuple[str, str], str] = {}
    for m in registry.meters.values():
        key = (m.site_id, m.gateway_id)
        if key not in out:
            out[key] = mqtt_topic(m.site_id, m.gateway_id)
    return out


def build_batches(
    readings: Sequence[tuple[str, float]], ts: datetime, meters: Mapping[str, Meter]
) -> list[GatewayBatch]:
    """Group one round of ``(meter_id, register)`` readings into one batch per gateway."""
    ts_text = format_ts(ts)
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for meter_id, register in readings:
        m = meters[meter_id]
        groups.setdefault((m.site_id, m.gateway_id), []).append(
            {"meter": meter_id, "ts": ts_text, "register": register, "unit": m.unit}
        )
    return [
        GatewayBatch(
            site_id=site_id,
            gateway_id=gateway_id,
            topic=mqtt_topic(site_id, gateway_id),
            payload=json.dumps({"readings": rows}, separators=(",", ":")).encode("utf-8"),
            readings=len(rows),
        )
        for (site_id, gateway_id), rows in groups.items()
    ]


def parse_start(text: str) -> datetime:
    """Parse ``--start``: ISO 8601; a time without offset is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--start {text!r} is not ISO 8601; accepted e.g. 2026-01-05T00:00:00Z"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _floor_now(interval_s: int) -> datetime:
    now = int(time.time())
    return datetime.fromtimestamp(now - now % interval_s, UTC)


def _parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nzc simulate",
        description="Simulate the meters of the registry and publish their readings over MQTT.",
    )
    p.add_argument("--registry", type=Path, default=settings.registry_path,
                   help="registry YAML (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument("--start", type=parse_start, default=None,
                   help="simulated start, ISO 8601 (default: now, floored to the interval)")
    p.add_argument("--interval-s", type=int, default=60,
                   help="reading period [s of simulated time] (default: %(default)s)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second; 0 = as fast as possible "
                        "(default: %(default)s = real time)")
    p.add_argument("--fast", action="store_true", help="same as --speed 0")
    p.add_argument("--duration-s", type=float, default=None,
                   help="stop after this much simulated time [s]")
    p.add_argument("--count", type=int, default=None, help="stop after this many rounds")
    p.add_argument("--forever", action="store_true", help="run until SIGINT/SIGTERM")
    p.add_argument("--mqtt-host", default=settings.mqtt_host,
                   help="broker host (default: NZC_MQTT_HOST = %(default)s)")
    p.add_argument("--mqtt-port", type=int, default=settings.mqtt_port,
                   help="broker port (default: NZC_MQTT_PORT = %(default)s)")
    p.add_argument("--max-inflight", type=int, default=500,
                   help="unacknowledged messages allowed (default: %(default)s)")
    return p


def _default_factory(host: str, port: int, max_inflight: int) -> Publisher:
    return MqttPublisher(host, port, max_inflight=max_inflight)


def _round_times(start: datetime, interval_s: int) -> Iterator[datetime]:
    k = 0
    while True:
        yield start + timedelta(seconds=k * interval_s)
        k += 1


def main(
    argv: list[str] | None = None, *, publisher_factory: PublisherFactory | None = None
) -> int:
    """Entry point of ``nzc simulate``; returns the process exit code (0 on success).

    ``publisher_factory`` replaces the MQTT publisher (tests).
    """
    settings = Settings.from_env()
    parser = _parser(settings)
    args = parser.parse_args(argv)
    speed = 0.0 if args.fast else float(args.speed)
    if speed < 0:
        parser.error(f"--speed must be >= 0, got {speed}")
    if args.interval_s <= 0:
        parser.error(f"--interval-s must be > 0, got {args.interval_s}")
    if args.count is not None and args.count <= 0:
        parser.error(f"--count must be > 0, got {args.count}")
    if args.duration_s is not None and args.duration_s < 0:
        parser.error(f"--duration-s must be >= 0, got {args.duration_s}")
    if args.forever and (args.count is not None or args.duration_s is not None):
        parser.error("--forever cannot be combined with --count or --duration-s")
    if not args.forever and args.count is None and args.duration_s is None:
        parser.error("give --duration-s and/or --count (or --forever)")

    try:
        registry = load_registry(args.registry)
    except (OSError, RegistryError) as exc:
        print(f"nzc simulate: cannot load registry: {exc}", file=sys.stderr)
        return 1
    if not registry.meters:
        print(f"nzc simulate: registry {args.registry} has no meters", file=sys.stderr)
        return 1

    interval_s: int = args.interval_s
    start: datetime = args.start if args.start is not None else _floor_now(interval_s)
    sim = ParkSimulation(registry, args.seed, start)
    end = start + timedelta(seconds=args.duration_s) if args.duration_s is not None else None
    max_rounds: int | None = args.count

    now = time.time()
    if speed != 1.0 and end is not None and end.timestamp() > now + settings.max_clock_skew_s:
        print(
            f"nzc simulate: warning: readings up to {format_ts(end)} lie in the future; ingest "
            f"rejects readings more than {settings.max_clock_skew_s} s ahead of its clock",
            file=sys.stderr,
        )

    stop = threading.Event()
    previous: list[tuple[signal.Signals, Any]] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, _on_signal)))

    factory = publisher_factory or _default_factory
    publisher = factory(args.mqtt_host, args.mqtt_port, args.max_inflight)
    per_gateway: dict[tuple[str, str], list[int]] = {
        key: [0, 0] for key in gateway_topics(registry)
    }
    rounds = 0
    messages = 0
    readings_n = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    wall0 = time.monotonic()
    # Real time from a default start: round k goes out when the wall clock reaches its ts.
    behind_s = now - start.timestamp()
    lag_s = behind_s if speed == 1.0 and 0 <= behind_s < interval_s else 0.0
    try:
        publisher.connect()
        wall0 = time.monotonic()
        for t in _round_times(start, interval_s):
            if stop.is_set():
                break
            if max_rounds is not None and rounds >= max_rounds:
                break
            if end is not None and t > end:
                break
            if speed > 0:
                due = wall0 - lag_s + (t - start).total_seconds() / speed
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            for batch in build_batches(sim.readings_at(t), t, registry.meters):
                publisher.publish(batch.topic, batch.payload, batch.readings)
                counts = per_gateway[(batch.site_id, batch.gateway_id)]
                counts[0] += 1
                counts[1] += batch.readings
                messages += 1
                readings_n += batch.readings
            rounds += 1
            first_ts = first_ts or t
            last_ts = t
        publisher.flush(30.0)
    except (PublishError, OSError) as exc:
        print(f"nzc simulate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        publisher.close()
        for sig, handler in previous:
            signal.signal(sig, handler)
    wall_s = max(time.monotonic() - wall0, 1e-9)

    span = f"{format_ts(first_ts)} .. {format_ts(last_ts)}" if first_ts and last_ts else "-"
    print(
        f"simulated {len(registry.meters)} meters on {len(per_gateway)} gateways, seed "
        f"{args.seed}: {rounds} rounds every {interval_s} s, {span}"
    )
    for (site_id, gateway_id), (n_msg, n_read) in per_gateway.items():
        print(f"  {site_id}/{gateway_id}: {n_msg} messages, {n_read} readings")
    print(
        f"published {messages} messages, {readings_n} readings in {wall_s:.3f} s wall: "
        f"{messages / wall_s:.0f} msg/s, {readings_n / wall_s:.0f} readings/s "
        f"(all acknowledged, broker {args.mqtt_host}:{args.mqtt_port})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
