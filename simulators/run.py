"""Simulate a pilot zone and publish its meters' readings over MQTT (``nzc simulate ...``).

Each *round* (every ``--interval-s`` seconds of simulated time, starting at ``--start``)
every gateway of the registry publishes its meters' registers in its own device format
(:mod:`simulators.formats`: our JSON batch on ``nzc/v1/<site>/<gateway>/readings`` for meters
without ``source``; Tasmota, Shelly Gen1/Gen2, Zigbee2MQTT, EMQ Neuron or Sparkplug B for the
others), QoS 1. The registry is ``--registry PATH`` (default ``NZC_REGISTRY``, the sample
park) or the sample of a pilot type, ``--profile campus`` (:data:`simulators.scale.PROFILES`);
``--sites``/``--meters-per-site`` scale it for load tests (``--write-registry`` saves the
scaled registry for ingest). ``--faults offline=0.01,spike=0.002,...`` injects faults
(:mod:`simulators.faults`).

``--speed`` is simulated seconds per wall second (1 = real time, 0 or ``--fast`` = as fast as
the broker acknowledges). A bounded run needs ``--duration-s`` (rounds at ``start + k x
interval`` up to and including ``start + duration``) and/or ``--count`` (number of rounds);
``--forever`` runs until SIGINT or SIGTERM. The report (messages, readings, per gateway, per
format, per fault; :class:`simulators.scenario.RunReport`) goes to standard output and, with
``--report-json``, to a file; :func:`run_cli` returns it.

Note: ingest rejects readings too far in the future (``NZC_MAX_CLOCK_SKEW_S``): with a speed
above 1, start in the past (a backfill) so the simulated clock stays behind the wall clock.
Shelly Gen1 messages carry no time (ingest stamps them on receipt): they are faithful only
at real-time speed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import yaml

from carbon.registry import Meter, Registry, RegistryError
from core.registry_yaml import load_registry
from core.settings import Settings, mqtt_topic
from simulators.faults import FaultConfig, FaultError, parse_faults
from simulators.formats import FORMATS, MeterReading, NzcEncoder, format_ts
from simulators.publisher import MqttPublisher, PublishError
from simulators.scale import PROFILES, profile_path, registry_document, scale_registry
from simulators.scenario import TIMELESS_FORMATS, RunReport, Scenario

__all__ = [
    "GatewayBatch",
    "NullPublisher",
    "Publisher",
    "build_batches",
    "format_ts",
    "gateway_topics",
    "main",
    "parse_start",
    "run_cli",
]


class Publisher(Protocol):
    """What :func:`main` needs from a publisher (:class:`simulators.publisher.MqttPublisher`)."""

    def connect(self, timeout_s: float = ...) -> None: ...
    def publish(self, topic: str, payload: bytes, readings: int = ...) -> None: ...
    def flush(self, timeout_s: float = ...) -> None: ...
    def close(self) -> None: ...


PublisherFactory = Callable[[str, int, int], Publisher]
"""``(host, port, max_inflight) -> Publisher``."""


class NullPublisher:
    """A publisher that sends nothing (``--dry-run``): counts messages and bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def connect(self, timeout_s: float = 10.0) -> None:
        """Nothing to connect to."""

    def publish(self, topic: str, payload: bytes, readings: int = 1) -> None:
        """Count the message."""
        self.messages += 1
        self.bytes += len(payload)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Nothing in flight."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass(frozen=True)
class GatewayBatch:
    """One message of our JSON format: ``readings`` readings of one gateway."""

    site_id: str
    gateway_id: str
    topic: str
    payload: bytes
    readings: int


def gateway_topics(registry: Registry) -> dict[tuple[str, str], str]:
    """``(site_id, gateway_id) -> MQTT topic`` of our format for every gateway, in registry
    order."""
    out: dict[tuple[str, str], str] = {}
    for m in registry.meters.values():
        key = (m.site_id, m.gateway_id)
        if key not in out:
            out[key] = mqtt_topic(m.site_id, m.gateway_id)
    return out


def build_batches(
    readings: Sequence[tuple[str, float]], ts: datetime, meters: Mapping[str, Meter]
) -> list[GatewayBatch]:
    """Group one round of ``(meter_id, register)`` readings into one batch of our JSON format
    per gateway (whatever the meters' ``source``)."""
    groups: dict[tuple[str, str], list[MeterReading]] = {}
    for meter_id, register in readings:
        m = meters[meter_id]
        groups.setdefault((m.site_id, m.gateway_id), []).append(MeterReading(m, ts, register))
    out: list[GatewayBatch] = []
    for (site_id, gateway_id), rs in groups.items():
        (msg,) = NzcEncoder(site_id, gateway_id).encode(rs, ts)
        out.append(GatewayBatch(site_id, gateway_id, msg.topic, msg.payload, msg.readings))
    return out


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


def _range(text: str) -> tuple[int, int]:
    """``"A-B"`` or ``"A"`` -> ``(A, B)`` rounds."""
    lo, _, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if hi else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a round range such as 2-10") from None
    return a, b


def _floor_now(interval_s: int) -> datetime:
    now = int(time.time())
    return datetime.fromtimestamp(now - now % interval_s, UTC)


def _parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nzc simulate",
        description="Simulate the meters of a pilot zone and publish their readings over MQTT "
                    "in their gateways' device formats.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--registry", type=Path, default=settings.registry_path,
                     help="registry YAML (default: NZC_REGISTRY = %(default)s)")
    src.add_argument("--profile", choices=sorted(PROFILES),
                     help="use the sample registry of a pilot type (simulators/sites/)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    p.add_argument("--start", type=parse_start, default=None,
                   help="simulated start, ISO 8601 (default: now, floored to the interval)")
    p.add_argument("--register-period-s", type=int, default=86_400,
                   help="registers count the energy since the start of their period, a multiple "
                        "of this many seconds since the Unix epoch, so that a register is a pure "
                        "function of (seed, meter, time) and a second run sends the same values "
                        "(0: registers start from seeded values at --start) "
                        "(default: %(default)s)")
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
    f = p.add_argument_group("faults")
    f.add_argument("--faults", default="",
                   help="faults and rates, e.g. offline=0.01,spike=0.002 (a name alone: 0.01); "
                        "names: offline, reset, replacement, rollover, spike, duplicate, "
                        "out_of_order, late, clock_skew, malformed, burst")
    f.add_argument("--offline-rounds", type=_range, default=(2, 10),
                   help="outage length [rounds], MIN-MAX (default: 2-10)")
    f.add_argument("--burst-rounds", type=_range, default=(3, 8),
                   help="gateway hold before a burst [rounds], MIN-MAX (default: 3-8)")
    f.add_argument("--late-rounds", type=int, default=30,
                   help="delay of a late message [rounds] (default: %(default)s)")
    f.add_argument("--clock-skew-s", type=float, default=86_400.0,
                   help="how far a skewed gateway clock runs ahead [s] (default: %(default)s)")
    s = p.add_argument_group("scale (load tests)")
    s.add_argument("--sites", type=int, default=1,
                   help="copies of each site of the registry (default: %(default)s)")
    s.add_argument("--meters-per-site", type=int, default=None,
                   help="meters per site: keep the first N or add sub-meters up to N")
    s.add_argument("--gateway-size", type=int, default=50,
                   help="meters per added gateway (default: %(default)s)")
    s.add_argument("--scale-formats", default="nzc",
                   help=f"formats of added gateways, cycled, from {', '.join(FORMATS)} "
                        "(default: %(default)s)")
    s.add_argument("--write-registry", type=Path, default=None,
                   help="write the registry used (scaled) as YAML, for NZC_REGISTRY of ingest")
    o = p.add_argument_group("output")
    o.add_argument("--vendor-extras", action="store_true",
                   help="vendor formats also send instantaneous values (Shelly power topics, "
                        "em:0 status)")
    o.add_argument("--timeless", choices=("auto", "send", "skip"), default="auto",
                   help="gateways whose format carries no reading time (Shelly Gen1): send, "
                        "skip, or auto = skip unless --speed 1 (default: %(default)s)")
    o.add_argument("--neuron-variant", choices=("values", "tags"), default="values",
                   help="Neuron upload format (default: %(default)s)")
    o.add_argument("--report-json", type=Path, default=None, help="write the report as JSON")
    o.add_argument("--dry-run", action="store_true",
                   help="compute everything, publish nothing (no broker needed)")
    o.add_argument("--mqtt-host", default=settings.mqtt_host,
                   help="broker host (default: NZC_MQTT_HOST = %(default)s)")
    o.add_argument("--mqtt-port", type=int, default=settings.mqtt_port,
                   help="broker port (default: NZC_MQTT_PORT = %(default)s)")
    o.add_argument("--max-inflight", type=int, default=500,
                   help="unacknowledged messages allowed (default: %(default)s)")
    return p


def _default_factory(host: str, port: int, max_inflight: int) -> Publisher:
    return MqttPublisher(host, port, max_inflight=max_inflight)


def _load(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Registry:
    """The registry of the run: file or profile, then scaled."""
    path: Path = profile_path(args.profile) if args.profile else args.registry
    registry = load_registry(path)
    formats = [x.strip() for x in args.scale_formats.split(",") if x.strip()]
    if args.sites != 1 or args.meters_per_site is not None:
        try:
            registry = scale_registry(registry, sites=args.sites,
                                      meters_per_site=args.meters_per_site,
                                      gateway_size=args.gateway_size, formats=formats)
        except ValueError as exc:
            parser.error(str(exc))
    return registry


def run_cli(
    argv: list[str] | None = None, *, publisher_factory: PublisherFactory | None = None
) -> tuple[int, RunReport | None]:
    """``nzc simulate``: returns the exit code (0 on success) and the run's report (``None``
    when the run could not start). ``publisher_factory`` replaces the MQTT publisher (tests)."""
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
        faults = FaultConfig(
            parse_faults(args.faults), offline_rounds=args.offline_rounds,
            burst_rounds=args.burst_rounds, late_rounds=args.late_rounds,
            clock_skew_s=args.clock_skew_s,
        )
    except FaultError as exc:
        parser.error(str(exc))

    try:
        registry = _load(args, parser)
    except (OSError, RegistryError) as exc:
        print(f"nzc simulate: cannot load registry: {exc}", file=sys.stderr)
        return 1, None
    if not registry.meters:
        print(f"nzc simulate: registry {args.registry} has no meters", file=sys.stderr)
        return 1, None
    if args.write_registry is not None:
        args.write_registry.write_text(
            yaml.safe_dump(registry_document(registry), sort_keys=False), encoding="utf-8")
        print(f"wrote the registry ({len(registry.meters)} meters) to {args.write_registry}")

    interval_s: int = args.interval_s
    start: datetime = args.start if args.start is not None else _floor_now(interval_s)
    end = start + timedelta(seconds=args.duration_s) if args.duration_s is not None else None
    max_rounds: int | None = args.count
    horizon: int | None = None
    if end is not None:
        horizon = int(args.duration_s // interval_s) + 1
    if max_rounds is not None:
        horizon = min(horizon or max_rounds, max_rounds)
    skip_timeless = args.timeless == "skip" or (args.timeless == "auto" and speed != 1.0)
    try:
        scenario = Scenario(
            registry, start=start, interval_s=interval_s, seed=args.seed, faults=faults,
            horizon_rounds=horizon, extras=args.vendor_extras, neuron_variant=args.neuron_variant,
            muted_formats=TIMELESS_FORMATS if skip_timeless else frozenset(),
            register_period_s=args.register_period_s or None,
        )
    except ValueError as exc:
        print(f"nzc simulate: {exc}", file=sys.stderr)
        return 1, None
    report = scenario.report

    now = time.time()
    if speed != 1.0 and end is not None and end.timestamp() > now + settings.max_clock_skew_s:
        print(
            f"nzc simulate: warning: readings up to {format_ts(end)} lie in the future; ingest "
            f"rejects readings more than {settings.max_clock_skew_s} s ahead of its clock",
            file=sys.stderr,
        )
    timeless = sorted({f"{s}/{g}" for s, g, fmt, _ in scenario.gateways()
                       if fmt in TIMELESS_FORMATS})
    if timeless and speed != 1.0 and not skip_timeless:
        report.warnings.append(
            f"gateways {', '.join(timeless)} speak a format without reading times (Shelly "
            "Gen1): ingest stamps their readings on receipt, which matches the simulated time "
            "only at --speed 1"
        )

    stop = threading.Event()
    previous: list[tuple[signal.Signals, Any]] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, _on_signal)))

    if args.dry_run:
        publisher: Publisher = NullPublisher()
        report.broker = "dry run"
    else:
        factory = publisher_factory or _default_factory
        publisher = factory(args.mqtt_host, args.mqtt_port, args.max_inflight)
        report.broker = f"{args.mqtt_host}:{args.mqtt_port}"
    wall0 = time.monotonic()
    # Real time from a default start: round k goes out when the wall clock reaches its ts.
    behind_s = now - start.timestamp()
    lag_s = behind_s if speed == 1.0 and 0 <= behind_s < interval_s else 0.0
    try:
        publisher.connect()
        wall0 = time.monotonic()
        k = 0
        while not stop.is_set():
            t = scenario.time_of(k)
            if max_rounds is not None and k >= max_rounds:
                break
            if end is not None and t > end:
                break
            if speed > 0:
                due = wall0 - lag_s + (t - start).total_seconds() / speed
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            for o in scenario.step():
                publisher.publish(o.topic, o.payload, o.readings)
            k += 1
        for o in scenario.finish():
            publisher.publish(o.topic, o.payload, o.readings)
        publisher.flush(30.0)
        report.acknowledged = not args.dry_run
    except (PublishError, OSError) as exc:
        print(f"nzc simulate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1, report
    finally:
        publisher.close()
        for sig, handler in previous:
            signal.signal(sig, handler)
    wall_s = max(time.monotonic() - wall0, 1e-9)
    report.wall_s = wall_s

    for line in report.lines():
        print(line)
    what = "all acknowledged" if report.acknowledged else "dry run, nothing sent"
    print(
        f"published {report.messages} messages, {report.readings} readings in {wall_s:.3f} s "
        f"wall: {report.messages / wall_s:.0f} msg/s, {report.readings / wall_s:.0f} "
        f"readings/s ({what}, broker {report.broker})"
    )
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    return 0, report


def main(
    argv: list[str] | None = None, *, publisher_factory: PublisherFactory | None = None
) -> int:
    """Entry point of ``nzc simulate``; returns the process exit code (0 on success).

    ``publisher_factory`` replaces the MQTT publisher (tests); :func:`run_cli` also returns
    the report.
    """
    return run_cli(argv, publisher_factory=publisher_factory)[0]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
