"""Expand Grafana's SQL macros and template variables the way Grafana's PostgreSQL data
source does, so that tests can run every panel's query against a real database without a
Grafana server.

Covered (Grafana docs, "PostgreSQL query editor", macros): ``$__timeFilter(col)`` ->
``col BETWEEN '<from>' AND '<to>'``; ``$__timeFrom()`` / ``$__timeTo()`` -> the range ends as
quoted RFC 3339 UTC strings; ``$__timeGroup(col, interval)`` ->
``floor(extract(epoch from col)/<s>)*<s>`` (seconds since the epoch) and
``$__timeGroupAlias`` the same ``AS "time"``; ``$__interval`` (``1h``, ``15m``, ...) and
``$__interval_ms``. Variables ``$name``, ``${name}`` and ``[[name]]``: a multi-value or
include-all variable becomes its values single-quoted and comma-separated (quotes doubled), a
single-value variable its raw text, as Grafana interpolates SQL data sources.
Anything else that looks like a macro or a variable is an error, never left in the SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


class MacroError(ValueError):
    """A macro or variable the expander does not know, or a malformed argument."""


@dataclass(frozen=True)
class Variable:
    """A template variable's current values; ``multi``: multi-value or include-all."""

    values: tuple[str, ...]
    multi: bool = True

    def render(self) -> str:
        if self.multi:
            return ",".join("'" + v.replace("'", "''") + "'" for v in self.values)
        if len(self.values) != 1:
            raise MacroError(f"single-value variable with {len(self.values)} values")
        return self.values[0]


def parse_duration(text: str) -> float:
    """``'15m'`` -> 900.0 [s] (Grafana's interval syntax)."""
    m = _DURATION.match(text.strip().strip("'\""))
    if not m:
        raise MacroError(f"{text!r}: not a Grafana interval like 15m, 1h, 1d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_interval(seconds: float) -> str:
    """900 -> ``'15m'``: the largest whole unit, as Grafana prints ``$__interval``."""
    for unit in ("w", "d", "h", "m", "s"):
        n = seconds / _UNITS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{int(seconds * 1000)}ms"


def _ts(t: datetime) -> str:
    if t.tzinfo is None:
        raise MacroError(f"{t!r}: a timezone-aware time is required")
    return "'" + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def expand(sql: str, time_from: datetime, time_to: datetime, interval_s: float,
           variables: dict[str, Variable]) -> str:
    """``sql`` with every macro and variable replaced; raises :class:`MacroError` on an
    unknown one."""
    out = sql.replace("$__interval_ms", str(int(interval_s * 1000)))
    out = out.replace("$__interval", format_interval(interval_s))

    def macro(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",") if a.strip()]
        if name == "timeFilter" and len(args) == 1:
            return f"{args[0]} BETWEEN {_ts(time_from)} AND {_ts(time_to)}"
        if name == "timeFrom" and not args:
            return _ts(time_from)
        if name == "timeTo" and not args:
            return _ts(time_to)
        if name in ("timeGroup", "timeGroupAlias") and len(args) >= 2:
            step = parse_duration(args[1])
            expr = f"floor(extract(epoch from {args[0]})/{step:g})*{step:g}"
            return expr + (' AS "time"' if name == "timeGroupAlias" else "")
        raise MacroError(f"unknown macro or arguments: {m.group(0)}")

    out = _MACRO.sub(macro, out)
    if "$__" in out:
        raise MacroError(f"unexpanded macro in: {out[out.index('$__'):][:40]!r}")

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise MacroError(f"undeclared variable ${name}")
        return variables[name].render()

    return _VARIABLE.sub(variable, out)


def referenced_variables(sql: str) -> set[str]:
    """Names of the template variables ``sql`` uses (macros excluded)."""
    names = set()
    for m in _VARIABLE.finditer(_MACRO.sub("", sql)):
        name = m.group(1) or m.group(2) or m.group(3)
        if not name.startswith("__"):
            names.add(name)
    return names
