"""Device formats: from meter register values at a time to MQTT ``(topic, payload bytes)``.

One encoder per gateway format (the registry's ``source.format`` of the gateway's meters;
meters without ``source`` speak our JSON). Encoders do no I/O and read no clock: the time of
every reading and of every message is passed in. Some keep state a real device keeps too
(Tasmota's ``Today``/``Yesterday``, Sparkplug B's sequence numbers, aliases and births).

===============  ==================================================  =====  ======================
format           topic, payload                                      unit   channel (registry)
===============  ==================================================  =====  ======================
``nzc`` (ours)   ``nzc/v1/<site>/<gateway>/readings`` JSON batch     meter  -- (meter id inside)
``tasmota``      ``tele/<device>/SENSOR``, ``ENERGY.Total``          kWh    ``None``
``shelly_gen1``  ``shellies/<id>/emeter/<n>/total`` (and             Wh     ``emeter/<n>/total``,
                 ``total_returned``), a bare number                         ``.../total_returned``
``shelly_gen2``  ``<id>/events/rpc`` ``NotifyStatus``: ``emdata:<n>``  Wh     ``emdata:<n>/``
                 ``total_act``/``total_act_ret``, ``em1data:<n>``            ``total_act``,
                 ``total_act_energy``/``total_act_ret_energy``              ``em1data:<n>/...``
``zigbee2mqtt``  ``zigbee2mqtt/<friendly name>``: ``energy``,        kWh    ``None``,
                 ``produced_energy``                                        ``produced_energy``
``neuron``       ``/neuron/<app>/<node>/<group>``: ``values``         kWh    DL/T 645 DI, e.g.
                 ``{"<addr>#<DI>": v}`` in 0.01 kWh steps                   ``00-00-00-00``
``sparkplug``    ``spBv1.0/<group>/{N,D}{BIRTH,DATA,DEATH}/<node>``  meter  metric name
                 ``[/<device>]``, protobuf
===============  ==================================================  =====  ======================

Device ids in the registry: Tasmota topic (``tasmota_5A3F21``), Shelly id
(``shellyem3-C45BBE6A0B21``, ``shellypro3em-0cb815fc1a01``), Zigbee2MQTT friendly name,
Neuron ``<node>/<group>/<12-digit meter address>``, Sparkplug ``<group>/<node>/<device>``.

Vendor shapes (sources):

* Tasmota ``EnergyShow`` telemetry: ``{"Time": local time without offset, "ENERGY":
  {"TotalStartTime", "Total" [kWh], "Yesterday" [kWh], "Today" [kWh], "Period" [Wh],
  "Power" [W], "ApparentPower" [VA], "ReactivePower" [var], "Factor", "Voltage" [V],
  "Current" [A]}}`` (tasmota.github.io, "Power Monitoring").
* Shelly Gen1 EM/3EM MQTT: one value per topic under ``shellies/<id>/emeter/<n>/``:
  ``total`` and ``total_returned`` [Wh], ``power`` [W], ``voltage`` [V] (Gen1 API docs).
* Shelly Gen2+ notifications (JSON-RPC 2.0 frame ``{"src", "dst", "method": "NotifyStatus",
  "params": {"ts" [s, UTC], "<component>:<id>": {...}}}``) on ``<prefix>/events/rpc``;
  EMData status ``total_act``/``total_act_ret`` [Wh], EM1Data ``total_act_energy``/
  ``total_act_ret_energy`` [Wh] (Gen2 API docs: Notifications, EMData, EM1Data).
* Zigbee2MQTT device state ``zigbee2mqtt/<friendly_name>``: ``energy`` and
  ``produced_energy`` [kWh], ``power`` [W], ``linkquality``, ``last_seen`` (with
  ``advanced.last_seen: ISO_8601``, UTC ``...Z``).
* EMQ Neuron MQTT upload, values format ``{"timestamp" [ms], "node", "group", "values",
  "errors"}`` or tags format ``{"timestamp", "node", "group", "tags": [{"name", "value" |
  "error"}]}``; upload topic ``/neuron/<app>/<driver>/<group>`` (Neuron >= 2.4). DL/T
  645-2007 energy items are BCD ``XXXXXX.XX`` kWh; with the tag attribute *Decimal* 0.01 as
  the Neuron DL/T 645 driver table asks, Neuron uploads kWh with two decimals. Tags are named
  after their address ``<meter address>#<DI3-DI2-DI1-DI0>``. A meter that does not answer
  is reported in ``errors`` (code 3002).
* Sparkplug B 3.0.0: NBIRTH (``seq`` 0, ``bdSeq`` Int64, ``Node Control/Rebirth``), DBIRTH
  with every metric's name, alias, datatype (Double) and ``engUnit`` property, then
  NDATA/DDATA by alias only, ``seq`` 0..255 wrapping per edge node over every message but
  NDEATH; DDEATH when all of a device's meters are offline, DBIRTH when they return;
  NDEATH (with the NBIRTH's ``bdSeq``) at the end. Values delivered in a later round than
  measured are ``is_historical`` (store and forward). The payload class is the one ingest
  decodes with (:func:`ingest.decoders.sparkplug_proto.payload_class`, built from the
  ``.proto`` transcription of the specification).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from carbon.registry import Meter, Site
from carbon.units import ELECTRIC_CARRIERS, to_canonical_factor
from core.settings import mqtt_topic

__all__ = [
    "ELECTRIC_ONLY_FORMATS",
    "FORMATS",
    "NEURON_READ_ERROR",
    "GatewayEncoder",
    "Message",
    "MeterReading",
    "NeuronEncoder",
    "NzcEncoder",
    "ShellyGen1Encoder",
    "ShellyGen2Encoder",
    "SparkplugEncoder",
    "TasmotaEncoder",
    "Zigbee2MqttEncoder",
    "corrupt",
    "encoder_for",
    "format_ts",
    "gateway_format",
    "in_unit",
]

#: Every gateway format the simulator speaks (``carbon.registry.DEVICE_FORMATS``).
FORMATS: Final = ("nzc", "tasmota", "shelly_gen1", "shelly_gen2", "zigbee2mqtt", "neuron",
                  "sparkplug")
#: Formats that carry electric energy only (kWh/Wh fields); gas, water and heat meters go
#: through our JSON or Sparkplug B, which carry any unit.
ELECTRIC_ONLY_FORMATS: Final = frozenset(
    {"tasmota", "shelly_gen1", "shelly_gen2", "zigbee2mqtt", "neuron"}
)
#: Neuron error code reported for a meter that did not answer (plugin read failure).
NEURON_READ_ERROR: Final = 3002
_VOLTAGE_V: Final = 230.0


@dataclass(frozen=True)
class MeterReading:
    """One register value of one meter, ready to encode.

    ``register`` is in the meter's own ``unit``; ``ts`` (aware) is the instant the device
    stamps on it (already shifted when the gateway clock is skewed); ``rate_per_h`` [meter unit
    per hour] feeds the instantaneous fields (``Power``) and may be ``None``; ``historical``
    marks a value delivered later than measured (store and forward).
    """

    meter: Meter
    ts: datetime
    register: float
    rate_per_h: float | None = None
    historical: bool = False


@dataclass(frozen=True)
class Message:
    """One MQTT message: ``carried`` are the meter readings it carries (none for a birth
    without values, a death, an instantaneous extra); ``kind`` is ``data``, ``birth``,
    ``death`` or ``extra``."""

    topic: str
    payload: bytes
    carried: tuple[MeterReading, ...] = ()
    kind: str = "data"

    @property
    def readings(self) -> int:
        """Number of meter registers in the message."""
        return len(self.carried)

    @property
    def meter_ids(self) -> tuple[str, ...]:
        """Meters whose registers the message carries."""
        return tuple(r.meter.meter_id for r in self.carried)


class GatewayEncoder(Protocol):
    """Turns one delivery of a gateway's readings into MQTT messages."""

    format: str

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """Messages for ``readings`` sent at ``now``; ``offline`` names the gateway's meters
        that are not answering in this round (formats that report it do so)."""
        ...

    def close(self, now: datetime) -> list[Message]:
        """Messages a gateway sends when it goes away (Sparkplug B NDEATH)."""
        ...


# --------------------------------------------------------------------------- helpers


def format_ts(t: datetime) -> str:
    """ISO 8601 UTC with a ``Z``; milliseconds only when the time has a fraction of a second."""
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(t: datetime) -> int:
    """Epoch milliseconds of an aware datetime (exact for whole milliseconds)."""
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def in_unit(meter: Meter, value: float, unit: str) -> float:
    """``value`` [meter unit] expressed in ``unit`` (same carrier), e.g. a ``kWh`` register in
    ``Wh`` for a Shelly."""
    f = to_canonical_factor(meter.carrier, meter.unit) / to_canonical_factor(meter.carrier, unit)
    return value * f


def _floor_to(value: float, step: float, digits: int) -> float:
    """Floor ``value`` to a multiple of ``step`` (monotone), rounded to ``digits`` decimals."""
    return round(math.floor(value / step + 1e-9) * step, digits)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _power_w(r: MeterReading) -> float:
    """Instantaneous power [W] from the reading's rate (electric meters), 0 when unknown."""
    if r.rate_per_h is None:
        return 0.0
    return in_unit(r.meter, r.rate_per_h, "Wh")


def _by_device_ts(
    readings: Sequence[MeterReading],
) -> dict[tuple[str, datetime], list[MeterReading]]:
    """Group readings by (device, reading time) in first-seen order."""
    out: dict[tuple[str, datetime], list[MeterReading]] = {}
    for r in readings:
        src = r.meter.source
        device = src.device if src is not None else r.meter.gateway_id
        out.setdefault((device, r.ts), []).append(r)
    return out


def corrupt(fmt: str, payload: bytes) -> bytes:
    """A malformed copy of ``payload`` for the malformed-payload fault: JSON cut in half (no
    longer parses), a Shelly Gen1 value that is not a number, Sparkplug bytes that start with
    an invalid protobuf tag (wire type 7)."""
    if fmt == "sparkplug":
        return b"\x0f\xff" + payload[: len(payload) // 2]
    if fmt == "shelly_gen1":
        return b"--" + payload[:3]
    return payload[: max(1, len(payload) // 2)]


# --------------------------------------------------------------------------- our JSON


@dataclass
class NzcEncoder:
    """Our JSON (``ingest.schema``): one batch ``{"readings": [...]}`` per delivery on
    ``nzc/v1/<site>/<gateway>/readings``; ``ts`` ISO 8601 UTC, ``register`` in the meter's
    unit."""

    site_id: str
    gateway_id: str
    format: str = "nzc"

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One batch with every reading (a gateway backlog keeps several times per meter)."""
        if not readings:
            return []
        rows = [
            {"meter": r.meter.meter_id, "ts": format_ts(r.ts), "register": r.register,
             "unit": r.meter.unit}
            for r in readings
        ]
        return [Message(mqtt_topic(self.site_id, self.gateway_id), _dumps({"readings": rows}),
                        tuple(readings))]

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end."""
        return []


# --------------------------------------------------------------------------- Tasmota


@dataclass
class _DayCounter:
    """``Today``/``Yesterday`` of one Tasmota device [kWh], counted from the first reading
    of each local day."""

    day: int = -1
    start_kwh: float = 0.0
    yesterday_kwh: float = 0.0
    last_kwh: float | None = None
    last_ts: datetime | None = None


@dataclass
class TasmotaEncoder:
    """Tasmota ``tele/<device>/SENSOR`` telemetry, one message per device and time; channel
    ``None`` is ``ENERGY.Total``, ``ExportActive`` the export register.

    ``Time`` is the device's local wall-clock time without offset (Tasmota's default; the
    device's ``Timezone`` is set to the site's zone ``tz``); ``ENERGY.Total`` [kWh, 3
    decimals] is the register. ``TotalStartTime`` is the first reading time of the run.
    ``Today``/``Yesterday`` are counted from the first reading of each local day (a device
    counts from local midnight; the difference is one reporting interval at most).
    """

    tz: ZoneInfo
    format: str = "tasmota"
    _days: dict[str, _DayCounter] = field(default_factory=dict)
    _start: dict[str, str] = field(default_factory=dict)

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One ``SENSOR`` message per device and reading time."""
        out: list[Message] = []
        for (device, ts), rs in _by_device_ts(readings).items():
            imports = [r for r in rs if _shelly_path(r.meter, "Total") == "Total"]
            exports = [r for r in rs if _shelly_path(r.meter, "Total") == "ExportActive"]
            others = sorted({_shelly_path(r.meter, "Total") for r in rs} - {"Total",
                                                                           "ExportActive"})
            if others:
                raise ValueError(f"Tasmota device {device}: channels {others} not simulated; "
                                 "accepted: none (ENERGY.Total) or ExportActive")
            local = ts.astimezone(self.tz)
            energy: dict[str, Any] = {}
            start = self._start.setdefault(device, local.strftime("%Y-%m-%dT%H:%M:%S"))
            energy["TotalStartTime"] = start
            power = 0
            if imports:
                r = imports[0]
                total = _floor_to(in_unit(r.meter, r.register, "kWh"), 0.001, 3)
                dc = self._days.setdefault(device, _DayCounter())
                if local.toordinal() != dc.day and (dc.last_ts is None or ts >= dc.last_ts):
                    if dc.day >= 0 and dc.last_kwh is not None:
                        dc.yesterday_kwh = max(dc.last_kwh - dc.start_kwh, 0.0)
                    dc.day, dc.start_kwh = local.toordinal(), total
                period_wh = 0
                if dc.last_kwh is not None and dc.last_ts is not None and ts > dc.last_ts:
                    period_wh = max(round((total - dc.last_kwh) * 1000), 0)
                if dc.last_ts is None or ts >= dc.last_ts:
                    dc.last_kwh, dc.last_ts = total, ts
                power = round(_power_w(r))
                energy.update({
                    "Total": total,
                    "Yesterday": round(dc.yesterday_kwh, 3),
                    "Today": round(max(total - dc.start_kwh, 0.0), 3),
                    "Period": period_wh,
                })
            if exports:
                r = exports[0]
                energy["ExportActive"] = _floor_to(in_unit(r.meter, r.register, "kWh"), 0.001, 3)
                power -= round(_power_w(r))
            energy.update({
                "Power": power,
                "ApparentPower": round(abs(power) / 0.95),
                "ReactivePower": round(abs(power) * 0.33),
                "Factor": 0.95 if power else 0.0,
                "Voltage": round(_VOLTAGE_V),
                "Current": round(abs(power) / _VOLTAGE_V / 0.95, 3),
            })
            doc = {"Time": local.strftime("%Y-%m-%dT%H:%M:%S"), "ENERGY": energy}
            out.append(Message(f"tele/{device}/SENSOR", _dumps(doc), tuple(imports + exports)))
        return out

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end (the LWT is the broker's business)."""
        return []


# --------------------------------------------------------------------------- Shelly


def _shelly_path(meter: Meter, default: str) -> str:
    src = meter.source
    return src.channel if src is not None and src.channel else default


@dataclass
class ShellyGen1Encoder:
    """Shelly Gen1 EM/3EM: one message per value topic ``shellies/<id>/emeter/<n>/<field>``,
    payload a bare number; ``total``/``total_returned`` [Wh, 1 decimal]. Gen1 messages carry
    no time: ingest stamps them on receipt, so they are only faithful at real-time speed.
    ``extras`` also publishes ``power`` [W] and ``voltage`` [V] like a real device."""

    extras: bool = False
    format: str = "shelly_gen1"

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One message per mapped register (channel ``emeter/<n>/total[_returned]``)."""
        out: list[Message] = []
        for r in readings:
            src = r.meter.source
            device = src.device if src is not None else r.meter.gateway_id
            path = _shelly_path(r.meter, "emeter/0/total")
            value = _floor_to(in_unit(r.meter, r.register, "Wh"), 0.1, 1)
            out.append(Message(f"shellies/{device}/{path}", f"{value:.1f}".encode(), (r,)))
            if self.extras:
                base = path.rsplit("/", 1)[0]
                sign = -1.0 if path.endswith("_returned") else 1.0
                out.append(Message(f"shellies/{device}/{base}/power",
                                   f"{sign * _power_w(r):.2f}".encode(), kind="extra"))
                out.append(Message(f"shellies/{device}/{base}/voltage",
                                   f"{_VOLTAGE_V:.2f}".encode(), kind="extra"))
        return out

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end."""
        return []


@dataclass
class ShellyGen2Encoder:
    """Shelly Gen2+/Pro: one ``NotifyStatus`` JSON-RPC notification per device and time on
    ``<id>/events/rpc``, ``params.ts`` [s, UTC], one ``emdata:<n>``/``em1data:<n>``
    component per mapped channel with its registers [Wh, 2 decimals]. Only mapped fields are
    sent (a notification may omit unchanged fields); ``extras`` adds the power of the
    ``em:<n>``/``em1:<n>`` components."""

    extras: bool = False
    format: str = "shelly_gen2"

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One notification per device and reading time."""
        out: list[Message] = []
        for (device, ts), rs in _by_device_ts(readings).items():
            params: dict[str, Any] = {"ts": round(_ms(ts) / 1000.0, 3)}
            for r in rs:
                comp, _, fld = _shelly_path(r.meter, "emdata:0/total_act").partition("/")
                kind, _, idx = comp.partition(":")
                status = params.setdefault(comp, {"id": int(idx) if idx.isdigit() else 0})
                status[fld] = _floor_to(in_unit(r.meter, r.register, "Wh"), 0.01, 2)
                if self.extras:
                    live = "em" if kind == "emdata" else "em1"
                    key = f"{live}:{status['id']}"
                    power = round(_power_w(r), 1)
                    params.setdefault(key, {"id": status["id"]})[
                        "total_act_power" if live == "em" else "act_power"] = power
            doc = {"src": device, "dst": f"{device}/events", "method": "NotifyStatus",
                   "params": params}
            out.append(Message(f"{device}/events/rpc", _dumps(doc), tuple(rs)))
        return out

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end."""
        return []


# --------------------------------------------------------------------------- Zigbee2MQTT


@dataclass
class Zigbee2MqttEncoder:
    """Zigbee2MQTT device state on ``zigbee2mqtt/<friendly name>``: ``energy`` (channel
    ``None``) or ``produced_energy`` [kWh, 2 decimals as the usual converters round],
    ``power`` [W], ``linkquality`` and ``last_seen`` (ISO 8601 UTC, the bridge's
    ``advanced.last_seen: ISO_8601``) so that readings keep the simulated time."""

    format: str = "zigbee2mqtt"

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One state message per device and reading time."""
        out: list[Message] = []
        for (device, ts), rs in _by_device_ts(readings).items():
            doc: dict[str, Any] = {}
            power = 0.0
            for r in rs:
                fld = _shelly_path(r.meter, "energy")
                doc[fld] = _floor_to(in_unit(r.meter, r.register, "kWh"), 0.01, 2)
                power += _power_w(r) * (-1.0 if fld == "produced_energy" else 1.0)
            doc["power"] = round(power, 1)
            doc["voltage"] = round(_VOLTAGE_V, 1)
            doc["linkquality"] = 120
            doc["last_seen"] = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
                f"{ts.microsecond // 1000:03d}Z")
            out.append(Message(f"zigbee2mqtt/{device}", _dumps(doc), tuple(rs)))
        return out

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end."""
        return []


# --------------------------------------------------------------------------- EMQ Neuron


@dataclass
class NeuronEncoder:
    """EMQ Neuron MQTT upload of DL/T 645-2007 meters: one message per (node, group) and read
    time on ``/neuron/<app>/<node>/<group>``; tag ``<address>#<DI>`` -> value [kWh, floored
    to 0.01 kWh as the meter's ``XXXXXX.XX`` register]; meters that do not answer (offline)
    appear in ``errors`` with :data:`NEURON_READ_ERROR`. ``variant`` ``values`` (default) or
    ``tags`` selects Neuron's upload format; ``app`` is the north app's name."""

    app: str
    meters: Mapping[str, Meter] = field(default_factory=dict)
    variant: str = "values"
    format: str = "neuron"

    def __post_init__(self) -> None:
        if self.variant not in ("values", "tags"):
            raise ValueError(f"Neuron upload variant {self.variant!r}; accepted: values, tags")
        for m in self.meters.values():
            self._parts(m)

    @staticmethod
    def _parts(meter: Meter) -> tuple[str, str, str, str]:
        src = meter.source
        if src is None or src.device.count("/") != 2:
            raise ValueError(
                f"meter {meter.meter_id}: a Neuron source needs device <node>/<group>/<address>"
            )
        node, group, addr = src.device.split("/")
        return node, group, addr, src.channel or "00-00-00-00"

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """One upload per (node, group, time); ``offline`` meters (of :attr:`meters`) are
        reported in ``errors`` of their group's first upload."""
        groups: dict[tuple[str, str, datetime], list[MeterReading]] = {}
        for r in readings:
            node, group, _, _ = self._parts(r.meter)
            groups.setdefault((node, group, r.ts), []).append(r)
        errors_by_group: dict[tuple[str, str], list[str]] = {}
        for mid in sorted(offline):
            m = self.meters.get(mid)
            if m is None:
                continue
            node, group, addr, di = self._parts(m)
            errors_by_group.setdefault((node, group), []).append(f"{addr}#{di}")
        out: list[Message] = []
        done: set[tuple[str, str]] = set()
        for (node, group, ts), rs in groups.items():
            values = {}
            for r in rs:
                _, _, addr, di = self._parts(r.meter)
                values[f"{addr}#{di}"] = _floor_to(in_unit(r.meter, r.register, "kWh"), 0.01, 2)
            errs = [] if (node, group) in done else errors_by_group.get((node, group), [])
            done.add((node, group))
            out.append(self._message(node, group, ts, values, errs, rs))
        for (node, group), errs in errors_by_group.items():
            if (node, group) not in done:
                out.append(self._message(node, group, now, {}, errs, []))
        return out

    def _message(self, node: str, group: str, ts: datetime, values: Mapping[str, float],
                 errors: Sequence[str], rs: Sequence[MeterReading]) -> Message:
        doc: dict[str, Any] = {"timestamp": _ms(ts), "node": node, "group": group}
        if self.variant == "values":
            doc["values"] = dict(values)
            doc["errors"] = dict.fromkeys(errors, NEURON_READ_ERROR)
        else:
            doc["tags"] = [{"name": k, "value": v} for k, v in values.items()] + [
                {"name": k, "error": NEURON_READ_ERROR} for k in errors]
        return Message(f"/neuron/{self.app}/{node}/{group}", _dumps(doc), tuple(rs))

    def close(self, now: datetime) -> list[Message]:
        """Nothing to say at the end."""
        return []


# --------------------------------------------------------------------------- Sparkplug B

SPARKPLUG_NAMESPACE: Final = "spBv1.0"
_INT64, _BOOLEAN, _DOUBLE, _STRING = 4, 11, 10, 12  # Sparkplug B data types (spec 6.4.16)
_DEFAULT_METRIC: Final = "Energy/Total"


def _payload_class() -> Any:
    from ingest.decoders.sparkplug_proto import payload_class

    return payload_class()


@dataclass
class _SpDevice:
    name: str
    meters: list[Meter] = field(default_factory=list)
    alive: bool = False
    last: dict[str, MeterReading] = field(default_factory=dict)


@dataclass
class _SpNode:
    group: str
    node: str
    devices: dict[str, _SpDevice] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)  # meter id -> alias
    seq: int = 0
    born: bool = False


class SparkplugEncoder:
    """Sparkplug B edge node(s) of one gateway (devices ``<group>/<node>/<device>``).

    The first :meth:`encode` sends NBIRTH (``seq`` 0, ``bdSeq``, ``Node Control/Rebirth``) and
    a DBIRTH per device with every metric (name, alias, Double value in the meter's unit,
    ``engUnit``, timestamp); later values go in DDATA by alias. A device whose meters are all
    ``offline`` gets a DDEATH; it is born again (DBIRTH with its latest values) when a value
    comes back. ``seq`` counts every message but NDEATH, 0..255 wrapping. :meth:`close` sends
    NDEATH with the NBIRTH's ``bdSeq``.
    """

    format = "sparkplug"

    def __init__(self, meters: Sequence[Meter], bd_seq: int = 0) -> None:
        self._nodes: dict[tuple[str, str], _SpNode] = {}
        self._where: dict[str, tuple[_SpNode, _SpDevice]] = {}
        self.bd_seq = bd_seq
        for m in meters:
            src = m.source
            if src is None or src.device.count("/") != 2:
                raise ValueError(
                    f"meter {m.meter_id}: a Sparkplug source needs device <group>/<node>/<device>"
                )
            group, node, device = src.device.split("/")
            n = self._nodes.setdefault((group, node), _SpNode(group, node))
            d = n.devices.setdefault(device, _SpDevice(device))
            d.meters.append(m)
            n.aliases[m.meter_id] = len(n.aliases) + 1
            self._where[m.meter_id] = (n, d)
        self._cls = _payload_class()

    # ----------------------------------------------------------------- payloads

    def _next_seq(self, n: _SpNode) -> int:
        s = n.seq
        n.seq = (n.seq + 1) % 256
        return s

    def _topic(self, n: _SpNode, mtype: str, device: str | None = None) -> str:
        base = f"{SPARKPLUG_NAMESPACE}/{n.group}/{mtype}/{n.node}"
        return base if device is None else f"{base}/{device}"

    @staticmethod
    def _metric_name(m: Meter) -> str:
        return m.source.channel if m.source is not None and m.source.channel else _DEFAULT_METRIC

    def _add_value(self, p: Any, n: _SpNode, r: MeterReading, birth: bool) -> None:
        metric = p.metrics.add()
        if birth:
            metric.name = self._metric_name(r.meter)
            prop = metric.properties
            prop.keys.append("engUnit")
            pv = prop.values.add()
            pv.type = _STRING
            pv.string_value = r.meter.unit
        metric.alias = n.aliases[r.meter.meter_id]
        metric.timestamp = _ms(r.ts)
        metric.datatype = _DOUBLE
        if r.historical:
            metric.is_historical = True
        metric.double_value = r.register

    def _node_birth(self, n: _SpNode, now: datetime) -> Message:
        p = self._cls()
        p.timestamp = _ms(now)
        n.seq = 0
        p.seq = self._next_seq(n)
        bd = p.metrics.add()
        bd.name, bd.timestamp, bd.datatype, bd.long_value = "bdSeq", _ms(now), _INT64, self.bd_seq
        rb = p.metrics.add()
        rb.name, rb.timestamp, rb.datatype = "Node Control/Rebirth", _ms(now), _BOOLEAN
        rb.boolean_value = False
        n.born = True
        return Message(self._topic(n, "NBIRTH"), p.SerializeToString(), kind="birth")

    def _device_birth(self, n: _SpNode, d: _SpDevice, now: datetime,
                      values: Sequence[MeterReading]) -> Message:
        p = self._cls()
        p.timestamp = _ms(now)
        p.seq = self._next_seq(n)
        by_meter = {r.meter.meter_id: r for r in values}
        carried: list[MeterReading] = []
        for m in d.meters:
            r = by_meter.get(m.meter_id) or d.last.get(m.meter_id)
            if r is None:
                metric = p.metrics.add()
                metric.name = self._metric_name(m)
                metric.alias = n.aliases[m.meter_id]
                metric.timestamp = _ms(now)
                metric.datatype = _DOUBLE
                metric.is_null = True
                prop = metric.properties
                prop.keys.append("engUnit")
                pv = prop.values.add()
                pv.type, pv.string_value = _STRING, m.unit
            else:
                self._add_value(p, n, r, birth=True)
                if m.meter_id in by_meter:
                    carried.append(r)
        d.alive = True
        return Message(self._topic(n, "DBIRTH", d.name), p.SerializeToString(),
                       tuple(carried), kind="birth")

    # ----------------------------------------------------------------- API

    def encode(
        self, readings: Sequence[MeterReading], now: datetime,
        offline: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """Births as needed, DDEATH for devices whose meters are all offline, then one
        DDATA per device and reading time (oldest first)."""
        out: list[Message] = []
        for n in self._nodes.values():
            if not n.born:
                out.append(self._node_birth(n, now))
        pending: dict[tuple[str, str], list[MeterReading]] = {}
        for r in readings:
            n, d = self._where[r.meter.meter_id]
            pending.setdefault((n.node, d.name), []).append(r)
        for n in self._nodes.values():
            for d in n.devices.values():
                rs = sorted(pending.get((n.node, d.name), []), key=lambda r: r.ts)
                all_off = all(m.meter_id in offline for m in d.meters)
                if d.alive and all_off and not rs:
                    p = self._cls()
                    p.timestamp = _ms(now)
                    p.seq = self._next_seq(n)
                    d.alive = False
                    out.append(Message(self._topic(n, "DDEATH", d.name), p.SerializeToString(),
                                       kind="death"))
                    continue
                if not d.alive and (rs or not all_off):
                    first_ts = rs[0].ts if rs else None
                    first = [r for r in rs if r.ts == first_ts]
                    out.append(self._device_birth(n, d, now, first))
                    rs = [r for r in rs if r.ts != first_ts]
                    for r in first:
                        d.last[r.meter.meter_id] = r
                by_ts: dict[datetime, list[MeterReading]] = {}
                for r in rs:
                    by_ts.setdefault(r.ts, []).append(r)
                for _ts, group in by_ts.items():
                    p = self._cls()
                    p.timestamp = _ms(now)
                    p.seq = self._next_seq(n)
                    for r in group:
                        self._add_value(p, n, r, birth=False)
                        prev = d.last.get(r.meter.meter_id)
                        if prev is None or r.ts >= prev.ts:
                            d.last[r.meter.meter_id] = r
                    out.append(Message(self._topic(n, "DDATA", d.name), p.SerializeToString(),
                                       tuple(group)))
        return out

    def close(self, now: datetime) -> list[Message]:
        """NDEATH of every edge node that was born (no ``seq``; ``bdSeq`` of its NBIRTH)."""
        out: list[Message] = []
        for n in self._nodes.values():
            if not n.born:
                continue
            p = self._cls()
            p.timestamp = _ms(now)
            bd = p.metrics.add()
            bd.name, bd.timestamp, bd.datatype, bd.long_value = "bdSeq", _ms(now), _INT64, (
                self.bd_seq)
            n.born = False
            out.append(Message(self._topic(n, "NDEATH"), p.SerializeToString(), kind="death"))
        return out


# --------------------------------------------------------------------------- factory


def gateway_format(meters: Sequence[Meter]) -> str:
    """The one format the gateway of ``meters`` speaks (``nzc`` for meters without source);
    raises ``ValueError`` naming the gateway when its meters disagree."""
    fmts = {m.source.format if m.source is not None else "nzc" for m in meters}
    if len(fmts) != 1:
        m = meters[0]
        raise ValueError(
            f"gateway {m.site_id}/{m.gateway_id} mixes formats {', '.join(sorted(fmts))}: "
            "each gateway speaks one format"
        )
    return fmts.pop()


def encoder_for(
    site: Site,
    gateway_id: str,
    meters: Sequence[Meter],
    *,
    extras: bool = False,
    neuron_variant: str = "values",
) -> GatewayEncoder:
    """The encoder of gateway ``gateway_id`` of ``site`` whose meters are ``meters``."""
    fmt = gateway_format(meters)
    if fmt in ELECTRIC_ONLY_FORMATS:
        for m in meters:
            if m.carrier not in ELECTRIC_CARRIERS:
                raise ValueError(
                    f"meter {m.meter_id} ({m.carrier.value}) on {fmt} gateway "
                    f"{site.site_id}/{gateway_id}: {fmt} carries electric energy only; use "
                    "our JSON or Sparkplug B for gas, water and heat"
                )
    if fmt == "nzc":
        return NzcEncoder(site.site_id, gateway_id)
    if fmt == "tasmota":
        return TasmotaEncoder(ZoneInfo(site.timezone))
    if fmt == "shelly_gen1":
        return ShellyGen1Encoder(extras=extras)
    if fmt == "shelly_gen2":
        return ShellyGen2Encoder(extras=extras)
    if fmt == "zigbee2mqtt":
        return Zigbee2MqttEncoder()
    if fmt == "neuron":
        return NeuronEncoder(app=f"{site.site_id}-{gateway_id}",
                             meters={m.meter_id: m for m in meters}, variant=neuron_variant)
    if fmt == "sparkplug":
        return SparkplugEncoder(meters)
    raise ValueError(f"gateway {site.site_id}/{gateway_id}: format {fmt!r}; accepted: "
                     f"{', '.join(FORMATS)}")
