"""EMQ Neuron gateway reading DL/T 645-2007 meters (format ``neuron``).

Sources: Neuron documentation, "MQTT north app: upload data format" (docs.emqx.com/en/neuron,
``tags`` and ``values`` formats; upload topic ``/neuron/{app}/upload`` before 2.4,
``/neuron/{app}/{driver}/{group}`` since 2.4) and "DL/T 645-2007 south driver" (tag address
``<meter address>#<DI3-DI2-DI1-DI0>``, hexadecimal data identifier; energy items ``00-xx-xx-xx``
are BCD ``XXXXXX.XX`` kWh, for which the driver table asks for the tag attribute
*Decimal = 0.01*); DL/T 645-2007 Appendix A, table A.1 (energy data identifiers).

Values format (tags format: ``"tags": [{"name": ..., "value": ...}, {"name": ..., "error":
2014}]`` instead of ``values``/``errors``)::

    /neuron/north-1/dlt645-bus1/energy {"timestamp":1763690400000,"node":"dlt645-bus1",
    "group":"energy","values":{"230100004521#00-00-00-00":10452.31},
    "errors":{"230100004522#00-00-00-00":3002}}

=======================  =====  ========  ==================  ==================================
field                    unit   kind      channel             note
=======================  =====  ========  ==================  ==================================
``timestamp``            ms     --        --                  UTC epoch ms of the read
``node``, ``group``      --     --        --                  device id ``<node>/<group>/<addr>``
``<addr>#00-00-<r>-00``  kWh    register  ``00-00-<r>-00``    combined active energy, total
                                                              (r=00) or tariff r
``<addr>#00-01-<r>-00``  kWh    register  ``00-01-<r>-00``    forward (import) active energy
``<addr>#00-02-<r>-00``  kWh    register  ``00-02-<r>-00``    reverse (export) active energy
``<addr>#00-15/16-00-00``  kWh  register  ``00-15-00-00`` ..  phase A forward / reverse active
``<addr>#00-29/2A-00-00``  kWh  register  ``00-29-00-00`` ..  phase B forward / reverse active
``<addr>#00-3D/3E-00-00``  kWh  register  ``00-3D-00-00`` ..  phase C forward / reverse active
other tags               --     --        --                  ignored (voltage, reactive energy,
                                                              settlement-day history DI0 != 00)
``errors`` / ``error``   --     --        --                  ``device_read_error`` event for an
                                                              energy tag
=======================  =====  ========  ==================  ==================================

Scaling: Neuron multiplies a tag's raw value by the tag's *Decimal* attribute before upload
(``value * decimal`` in the driver adapter). We accept values in **kWh**, i.e. tags set up as
Neuron's DL/T 645 table says (Decimal 0.01). A tag left at Decimal 0 arrives as a count of
0.01 kWh, 100 times too large: such a gateway must be fixed in Neuron (the spike check in the
stream catches the first jump, not a whole history).

Tag names: Neuron uploads tag *names*, not addresses. The mapping needs the meter address and
data identifier, so tags must be named after their address (``<address>#<DI>``, as in the
examples of the Neuron DL/T 645 documentation). Tags named otherwise are ignored.

Device identity: ``<node>/<group>/<meter address>`` (the south node and group as Neuron names
them), channel the data identifier with upper-case hex (``00-00-00-00``). Neuron's heartbeat,
read/write response and other non-upload messages are ignored.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ingest.decoders import (
    EMPTY,
    MAX_READINGS_PER_MESSAGE,
    DecodeError,
    DecodeResult,
    DeviceEvent,
    DeviceReading,
    FieldSpec,
    check_ts_ms,
    energy_value,
    json_object,
    short,
    text_id,
)

FORMAT: Final = "neuron"

FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("timestamp", "ms", "-", "-", "UTC epoch ms of the read"),
    FieldSpec("<addr>#00-00-<r>-00", "kWh", "register", "00-00-<r>-00",
              "combined active energy (r=00 total, else tariff r)"),
    FieldSpec("<addr>#00-01-<r>-00", "kWh", "register", "00-01-<r>-00", "forward active"),
    FieldSpec("<addr>#00-02-<r>-00", "kWh", "register", "00-02-<r>-00", "reverse active"),
    FieldSpec("<addr>#00-15/16-00-00", "kWh", "register", "00-15-00-00",
              "phase A forward/reverse active"),
    FieldSpec("<addr>#00-29/2A-00-00", "kWh", "register", "00-29-00-00",
              "phase B forward/reverse active"),
    FieldSpec("<addr>#00-3D/3E-00-00", "kWh", "register", "00-3D-00-00",
              "phase C forward/reverse active"),
)

# DL/T 645-2007 table A.1, DI3 = 00 (energy), DI2 of the *active* energy items [kWh]:
# 00 combined, 01 forward, 02 reverse, 15/16 phase A forward/reverse, 29/2A phase B, 3D/3E
# phase C. Others are reactive [kvarh] or apparent [kVAh] energy and are not kWh.
ACTIVE_ENERGY_DI2: Final = frozenset({"00", "01", "02", "15", "16", "29", "2A", "3D", "3E"})
_TAG = re.compile(r"^([0-9A-Fa-f]{1,12})#([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})-([0-9A-Fa-f]{2})"
                  r"-([0-9A-Fa-f]{2})$")
_NOT_UPLOADS: Final = ("heartbeat", "resp", "req")


def energy_tag(name: str) -> tuple[str, str] | None:
    """``(meter address, DI)`` when ``name`` is a *current* active-energy tag, else ``None``."""
    m = _TAG.match(name)
    if m is None:
        return None
    di3, di2, di1, di0 = (p.upper() for p in m.groups()[1:])
    if di3 != "00" or di2 not in ACTIVE_ENERGY_DI2 or di0 != "00":
        return None
    return m.group(1), f"{di3}-{di2}-{di1}-{di0}"


def _tag_values(doc: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """``(values, errors)`` as (tag name, value / error code) from either upload format."""
    if "tags" in doc:
        tags = doc["tags"]
        if not isinstance(tags, list):
            raise DecodeError("schema", f"tags must be a list, got {short(tags)}")
        values, errors = [], []
        for i, t in enumerate(tags):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise DecodeError("schema", f"tags[{i}] must be an object with a name")
            if "error" in t:
                errors.append((t["name"], t["error"]))
            elif "value" in t:
                values.append((t["name"], t["value"]))
        return values, errors
    vals, errs = doc.get("values", {}), doc.get("errors", {})
    if not isinstance(vals, dict) or not isinstance(errs, dict):
        raise DecodeError("schema", "values and errors must be objects (tag name -> value)")
    return list(vals.items()), list(errs.items())


def is_upload(doc: Any) -> bool:
    """Whether a parsed payload looks like a Neuron upload (for custom upload topics)."""
    return (isinstance(doc, dict) and "node" in doc and "group" in doc and "timestamp" in doc
            and ("values" in doc or "tags" in doc))


def decode(topic: str, payload: bytes, received_ms: int) -> DecodeResult:
    """Decode one Neuron upload message (``values`` or ``tags`` format)."""
    last = topic.rstrip("/").rsplit("/", 1)[-1]
    if last in _NOT_UPLOADS:
        return EMPTY
    doc = json_object(payload, "Neuron upload")
    if "states" in doc or "uuid" in doc:
        return EMPTY  # heartbeat, read/write responses on a shared custom topic
    node = text_id(doc.get("node"), "node")
    group = text_id(doc.get("group"), "group")
    if "/" in node or "/" in group:
        raise DecodeError("schema", "node and group names must not contain '/'")
    ts = doc.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise DecodeError("schema", f"timestamp must be epoch milliseconds, got {short(ts)}")
    values, errors = _tag_values(doc)
    if len(values) + len(errors) > MAX_READINGS_PER_MESSAGE:
        raise DecodeError("too_many_readings",
                          f"upload carries {len(values) + len(errors)} tags; at most "
                          f"{MAX_READINGS_PER_MESSAGE} per message are accepted")
    if not values and not errors:
        return EMPTY
    ts = check_ts_ms(ts, "timestamp")
    readings: list[DeviceReading] = []
    events: list[DeviceEvent] = []
    for name, raw in values:
        tag = energy_tag(name)
        if tag is None:
            continue
        addr, di = tag
        device = f"{node}/{group}/{addr}"
        try:
            value = energy_value(raw, f"tag {name!r}")
        except DecodeError as exc:
            events.append(DeviceEvent(FORMAT, device, exc.code, str(exc), ts, channel=di))
            continue
        readings.append(DeviceReading(format=FORMAT, device=device, channel=di,
                                      kind="register", value=value, unit="kWh", ts_ms=ts))
    for name, code in errors:
        tag = energy_tag(name)
        if tag is None:
            continue
        addr, di = tag
        events.append(DeviceEvent(
            FORMAT, f"{node}/{group}/{addr}", "device_read_error",
            f"Neuron could not read tag {name!r} of node {node!r} group {group!r}: "
            f"error code {short(code)}", ts, channel=di))
    return DecodeResult(readings=tuple(readings), events=tuple(events))
