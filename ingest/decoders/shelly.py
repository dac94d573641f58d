"""Shelly energy meters over MQTT: Gen1 (``shelly_gen1``) and Gen2+/Pro (``shelly_gen2``).

Sources: Shelly Gen1 API, "Shelly EM / 3EM: MQTT" (shelly-api-docs.shelly.cloud/gen1);
Shelly Gen2+ API, "MQTT" (notifications on ``<topic prefix>/events/rpc``), components
"EMData" and "EM1Data" (shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices).

Gen1 (Shelly EM, 3EM) publishes one value per topic, the payload a bare number::

    shellies/shellyem3-ECFABC0A1B2C/emeter/0/total 123456.7

Gen2+ (Pro 3EM, Pro EM, EM Gen3) sends JSON-RPC notifications::

    shellypro3em-c8f09e8a1b2c/events/rpc {"src":"shellypro3em-c8f09e8a1b2c","dst":
    "shellypro3em-c8f09e8a1b2c/events","method":"NotifyStatus","params":{"ts":1763690400.12,
    "emdata:0":{"id":0,"total_act":123456.7,"total_act_ret":12.3}}}

==================================  ====  ========  ===============================  ==========
field                               unit  kind      channel                          note
==================================  ====  ========  ===============================  ==========
Gen1 ``emeter/<n>/total``           Wh    register  ``emeter/<n>/total``             import
Gen1 ``emeter/<n>/total_returned``  Wh    register  ``emeter/<n>/total_returned``    export
Gen1 other ``emeter/<n>/*``         --    --        --                               ignored
Gen2 ``emdata:<n>.total_act``       Wh    register  ``emdata:<n>/total_act``         3 phases
Gen2 ``emdata:<n>.total_act_ret``   Wh    register  ``emdata:<n>/total_act_ret``     export
Gen2 ``emdata:<n>.<p>_total_act_energy``  Wh  register  ``emdata:<n>/<p>_total_act_energy``
                                                                                     p = a,b,c
Gen2 ``emdata:<n>.<p>_total_act_ret_energy``  Wh  register  ``emdata:<n>/<p>_total_act_ret_energy``
Gen2 ``em1data:<n>.total_act_energy``      Wh  register  ``em1data:<n>/total_act_energy``
Gen2 ``em1data:<n>.total_act_ret_energy``  Wh  register  ``em1data:<n>/total_act_ret_energy``
Gen2 ``params.ts``                  s     --        --                               UTC epoch
==================================  ====  ========  ===============================  ==========

Device identity: Gen1 the ``<id>`` topic level (``shellies/<id>/...``, by default
``shellyem3-<MAC>``); Gen2 the notification's ``src`` (the device id, independent of the
configurable topic prefix), or the topic prefix when ``src`` is missing.

Reading time: Gen1 messages carry none, so the receive time is used; Gen2 notifications carry
``params.ts`` [s since the epoch, UTC] (Shelly documents seconds, a float: it is read as
seconds whatever its size, cut to whole milliseconds; outside 2000..9999, NaN or 1e308:
``impossible_timestamp``). ``src`` must be a printable device id (``schema`` otherwise).
Gen2 notifications other than ``NotifyStatus`` / ``NotifyFullStatus``, and status without
energy components, carry no energy and are ignored.
"""

from __future__ import annotations

from typing import Any, Final

from ingest.decoders import (
    EMPTY,
    DecodeError,
    DecodeResult,
    DeviceReading,
    FieldSpec,
    energy_value,
    epoch_ms,
    json_object,
    short,
    text_id,
)

FORMAT_GEN1: Final = "shelly_gen1"
FORMAT_GEN2: Final = "shelly_gen2"

FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("emeter/<n>/total", "Wh", "register", "emeter/<n>/total", "Gen1 import"),
    FieldSpec("emeter/<n>/total_returned", "Wh", "register", "emeter/<n>/total_returned",
              "Gen1 export"),
    FieldSpec("emdata:<n>.total_act", "Wh", "register", "emdata:<n>/total_act",
              "Gen2 three-phase import, all phases"),
    FieldSpec("emdata:<n>.total_act_ret", "Wh", "register", "emdata:<n>/total_act_ret",
              "Gen2 three-phase export, all phases"),
    FieldSpec("emdata:<n>.<p>_total_act_energy", "Wh", "register",
              "emdata:<n>/<p>_total_act_energy", "Gen2 import of phase p = a, b, c"),
    FieldSpec("emdata:<n>.<p>_total_act_ret_energy", "Wh", "register",
              "emdata:<n>/<p>_total_act_ret_energy", "Gen2 export of phase p = a, b, c"),
    FieldSpec("em1data:<n>.total_act_energy", "Wh", "register", "em1data:<n>/total_act_energy",
              "Gen2 single-phase import of channel n"),
    FieldSpec("em1data:<n>.total_act_ret_energy", "Wh", "register",
              "em1data:<n>/total_act_ret_energy", "Gen2 single-phase export of channel n"),
    FieldSpec("params.ts", "s", "-", "-", "Gen2 notification time, UTC epoch seconds"),
)

GEN1_FIELDS: Final = frozenset({"total", "total_returned"})
EMDATA_FIELDS: Final[tuple[str, ...]] = (
    "total_act", "total_act_ret",
    "a_total_act_energy", "b_total_act_energy", "c_total_act_energy",
    "a_total_act_ret_energy", "b_total_act_ret_energy", "c_total_act_ret_energy",
)
EM1DATA_FIELDS: Final[tuple[str, ...]] = ("total_act_energy", "total_act_ret_energy")
STATUS_METHODS: Final = frozenset({"NotifyStatus", "NotifyFullStatus"})


def decode_gen1(topic: str, payload: bytes, received_ms: int) -> DecodeResult:
    """Decode one Gen1 ``shellies/<id>/emeter/<n>/<field>`` message: ``total`` and
    ``total_returned`` [Wh] are registers; power, voltage etc. are ignored."""
    parts = topic.split("/")
    if len(parts) < 2 or parts[0] != "shellies" or not parts[1]:
        raise DecodeError("topic", f"topic {topic!r} is not shellies/<id>/emeter/<n>/<field>")
    if len(parts) != 5 or parts[2] != "emeter":
        return EMPTY  # announce, online, relay/... topics of the same device tree
    device, n, field = parts[1], parts[3], parts[4]
    if field not in GEN1_FIELDS:
        return EMPTY
    if not (n.isdigit() and n.isascii()):
        raise DecodeError("topic", f"emeter index {short(n)} in {short(topic)} is not a number")
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        raw: Any = float(text)
    except ValueError:
        raise DecodeError("schema",
                          f"{field} payload {short(text[:40])} is not a number [Wh]") from None
    value = energy_value(raw, f"emeter/{n}/{field}")
    return DecodeResult(readings=(DeviceReading(
        format=FORMAT_GEN1, device=device, channel=f"emeter/{n}/{field}", kind="register",
        value=value, unit="Wh"),))


def decode_gen2(topic: str, payload: bytes, received_ms: int) -> DecodeResult:
    """Decode one Gen2+ ``<prefix>/events/rpc`` notification (``NotifyStatus`` or
    ``NotifyFullStatus`` with ``emdata:<n>`` / ``em1data:<n>`` components)."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[-2:] != ["events", "rpc"]:
        raise DecodeError("topic", f"topic {topic!r} is not <prefix>/events/rpc")
    doc = json_object(payload, "Shelly RPC notification")
    method = doc.get("method")
    if not isinstance(method, str) or method not in STATUS_METHODS:
        return EMPTY
    params = doc.get("params")
    if not isinstance(params, dict):
        raise DecodeError("schema", f"params must be an object, got {params!r}")
    src = doc.get("src")
    device = "/".join(parts[:-2]) if src is None else text_id(src, "src (the device id)")
    values: list[tuple[str, float]] = []
    for key in sorted(params):
        comp, _, idx = key.partition(":")
        fields: tuple[str, ...]
        if comp == "emdata":
            fields = EMDATA_FIELDS
        elif comp == "em1data":
            fields = EM1DATA_FIELDS
        else:
            continue
        status = params[key]
        if not isinstance(status, dict) or not idx.isdigit() or not idx.isascii():
            raise DecodeError("schema",
                              f"params.{short(key)} must be an {comp} status object")
        for f in fields:
            if status.get(f) is None:
                continue
            values.append((f"{key}/{f}", energy_value(status[f], f"params.{key}.{f}")))
    if not values:
        return EMPTY
    ts_ms: int | None = None
    if params.get("ts") is not None:
        ts_ms = epoch_ms(params["ts"], "params.ts (epoch seconds)", seconds=True)
    return DecodeResult(readings=tuple(
        DeviceReading(format=FORMAT_GEN2, device=device, channel=channel, kind="register",
                      value=value, unit="Wh", ts_ms=ts_ms)
        for channel, value in values))
