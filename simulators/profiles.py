"""Load profiles of the pilot types and the meter registers they produce.

Pure and deterministic: every rate is a function of ``(seed, meter, UTC instant)`` only, computed
from a counter-based hash (splitmix64), so the same seed gives the same readings whatever order
or step the caller asks in. No clock, no I/O, no logging.

Model
=====
Time is cut into *slots* of ``slot_s`` seconds aligned to the Unix epoch (default 60 s). Within a
slot every meter's rate is constant, evaluated at the slot's midpoint; a register is the exact
integral of that piecewise-constant rate (sum of ``rate x overlap``), so a test can recompute any
register difference from :meth:`SiteSimulation.rates_at`.

Rates are computed in the carrier's canonical unit per hour (kW for electricity, m3/h for gas,
GJ/h for heat; ``carbon.units``) and converted to the meter's own unit (``Wh`` meters report
1000x the kW value) only at the edge. Shapes use the site's local time (``Site.timezone``,
Asia/Shanghai by default): day of week, hour of day, day of year, Chinese public holidays
(:func:`is_public_holiday`) and campus vacations (:func:`is_campus_vacation`).

Profiles by pilot type
======================
The site's ``type`` and each meter's ``group`` select a :class:`Schedule`
(:func:`schedule_for`: exact :data:`GROUP_SCHEDULES`, keywords :data:`GROUP_KEYWORDS`, then the
site type's default :data:`SITE_TYPE_SCHEDULES`); the carrier and keywords in the meter id
select a :class:`LoadKind` (:func:`classify_meter`):

* **industrial park / enterprise**: shift patterns (``three_shift`` continuous process,
  ``two_shift``, ``day_shift``, ``office``), production lines, HVAC, cold stores, gas boilers
  (warm-up before the shift) and process gas, recovered waste heat following the process,
  rooftop PV, a data centre whose IT meters run flat and whose facility meter
  (``facility``/``cooling``) is 12-24 % of its IT siblings (more in summer);
* **campus**: teaching buildings (classes and evening study, quiet at weekends and in
  vacations), dormitories (night base load, evening peak), canteen with meal peaks and gas,
  street lighting from dusk to dawn;
* **community**: residential daily curve (morning and evening peaks), public-area lighting,
  EV chargers at home (evening arrival, valley-tariff charging 23:00-07:00), household gas;
* **scenic area**: loads driven by the visitors present (:meth:`SiteSimulation.daily_visitors`,
  more at weekends, twice as many on public holidays, spring/autumn and summer peaks), hotel,
  landscape lighting, shuttle charging;
* **commercial**: a mall open 10:00-22:00 every day, busiest at weekends, chillers, tenants,
  food court with gas;
* **public institution**: office hours on working days, closed on holidays, staff canteen,
  a server room that never stops.

Meter roles, inferred from the registry tree and the carrier:

* **leaf loads** (no children): a shape times the meter's ``max_rate_per_h``, per kind and
  schedule. Each meter gets a seeded peak factor (0.85-1.0), a seeded day factor (0.93-1.05
  per local day) and bounded slot and 15-minute noise.
* **parents** (meters with consumption children of the same canonical unit): ``rate = (sum of
  children + unmetered own load) x (1 + losses)``, losses 5-15 % (seeded, slowly varying), own load
  from :data:`UNMETERED_PEAK_FRACTION` (offices of the service centre, process lines of enterprise
  B that have no sub-meter, park lighting). Hence ``parent >= sum(children)`` always: the
  difference is the unmetered remainder.
* **data-centre facility** meters (kind ``dc_facility`` with ``it_load`` siblings): overhead x
  the IT siblings' load.
* **PV** (``onsite_renewable``): Haurwitz clear-sky irradiance (pvlib ``clearsky.haurwitz``) on
  the horizontal, solar position from Cooper's declination and the PVEducation equation-of-time
  approximation, times a seeded cloudiness per local day and a smooth 20-minute cloud noise;
  exactly zero while the sun is below the horizon. PV behind a sub-meter (with a parent) is
  simulated but netted nowhere.
* **site connection** (the site's top-level ``grid_import`` meter when the site has top-level
  PV): consumption ``L`` is computed as for a parent, the meter shows ``max(L - PV, 0)`` and the
  top-level ``grid_export`` meters share ``max(PV - L, 0)`` in proportion to their
  ``max_rate_per_h`` (a site without export meter curtails the surplus). The balance
  ``import + PV - export = L >= sum(children)`` holds exactly.

Every rate stays at or below 95 % of the meter's ``max_rate_per_h``: bounds of each shape are
known in closed form and whole subtrees are scaled down at construction where the children's
bounds would overflow a parent. Registers roll over to 0 at ``register_max``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from carbon.registry import Meter, Registry, Site
from carbon.units import CANONICAL_UNIT, Carrier

__all__ = [
    "CAMPUS_VACATIONS",
    "CITY_COORDINATES",
    "FIXED_HOLIDAYS",
    "GROUP_KEYWORDS",
    "GROUP_SCHEDULES",
    "MAX_RATE_FRACTION",
    "SCHEDULES",
    "SITE_TYPE_SCHEDULES",
    "SPRING_FESTIVAL",
    "UNMETERED_PEAK_FRACTION",
    "VISITOR_BASE_PER_DAY",
    "LoadKind",
    "ParkSimulation",
    "Schedule",
    "SiteSimulation",
    "arrivals_fraction",
    "classify_meter",
    "haurwitz_ghi_w_m2",
    "is_campus_vacation",
    "is_public_holiday",
    "register_resolution",
    "schedule_for",
    "seeded_uniform",
    "solar_cos_zenith",
]

_M64 = (1 << 64) - 1
_TWO_PI = 2.0 * math.pi
# Safety margin: every simulated rate is <= this fraction of the meter's max_rate_per_h.
MAX_RATE_FRACTION = 0.95


# --------------------------------------------------------------------------- deterministic noise


def _splitmix64(x: int) -> int:
    """One splitmix64 step (Steele, Lea, Flood 2014): a 64-bit mixing function."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _key(seed: int, *parts: str) -> int:
    """A 64-bit stream key for ``seed`` and the given labels."""
    k = _splitmix64(seed & _M64)
    for p in parts:
        k = _splitmix64(k ^ zlib.crc32(p.encode("utf-8")))
    return k


def _u01(key: int, n: int) -> float:
    """Uniform number in [0, 1) for stream ``key`` at integer position ``n``."""
    return _splitmix64(key ^ _splitmix64(n & _M64)) / 18446744073709551616.0


def seeded_uniform(seed: int, n: int, *labels: str) -> float:
    """Uniform number in [0, 1) for ``seed``, the stream named by ``labels`` and position ``n``:
    the same arguments give the same number in any order of calls (used by the fault plan)."""
    return _u01(_key(seed, *labels), n)


def _smooth(key: int, t_s: float, knot_s: float) -> float:
    """Smooth value noise in [0, 1]: hash values at knots every ``knot_s`` seconds, joined by
    a smoothstep."""
    x = t_s / knot_s
    k = math.floor(x)
    f = x - k
    w = f * f * (3.0 - 2.0 * f)
    a = _u01(key, k)
    return a + (_u01(key, k + 1) - a) * w


# --------------------------------------------------------------------------- calendar

#: Chinese New Year's day (first day of the first lunar month) by year; the Spring Festival
#: holiday is taken as the eve and the six days after it (State Council General Office notices
#: publish the exact days and make-up working days each year: check).
SPRING_FESTIVAL: dict[int, date] = {
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
}

#: Fixed-date public holidays ``(month, first day, last day)``: New Year's Day, Qingming
#: (approximate: 4-6 April), Labour Day (1-5 May), National Day (1-7 October). Dragon Boat and
#: Mid-Autumn (lunar dates) and make-up working days are left out.
FIXED_HOLIDAYS: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (4, 4, 6), (5, 1, 5), (10, 1, 7))

#: Campus vacations ``((month, day) first, (month, day) last)``, typical of Chinese
#: universities (check: each university publishes its own calendar).
CAMPUS_VACATIONS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((1, 15), (2, 25)),  # winter vacation
    ((7, 10), (8, 31)),  # summer vacation
)


@lru_cache(maxsize=4096)
def is_public_holiday(d: date) -> bool:
    """True on a Chinese public holiday (local date ``d``), after :data:`FIXED_HOLIDAYS` and
    :data:`SPRING_FESTIVAL` (years outside the table have no Spring Festival holiday)."""
    for month, first, last in FIXED_HOLIDAYS:
        if d.month == month and first <= d.day <= last:
            return True
    sf = SPRING_FESTIVAL.get(d.year) or SPRING_FESTIVAL.get(d.year + 1)
    if sf is None:
        return False
    return -1 <= (d - sf).days <= 6


@lru_cache(maxsize=4096)
def is_campus_vacation(d: date) -> bool:
    """True inside a campus vacation (:data:`CAMPUS_VACATIONS`, local date ``d``)."""
    md = (d.month, d.day)
    return any(first <= md <= last for first, last in CAMPUS_VACATIONS)


# --------------------------------------------------------------------------- schedules and shapes


@dataclass(frozen=True)
class Schedule:
    """When a group works, in local time.

    ``start_h``/``end_h`` [h, local] bound the working window (``end_h`` may be 24);
    ``day_levels`` is the activity level Monday..Sunday [0-1]; ``ramp_h`` [h] is the length of
    the ramps inside the window; ``dips`` are ``(centre_h, half_width_h, depth)`` triangles
    (breaks, shift changes) that lower the activity by ``depth`` at their centre.

    ``hourly`` (24 values [0-1], the level at each full hour, linearly interpolated) replaces
    the window and ramps for curves with several peaks (homes, dormitories, canteens);
    ``start_h`` then only marks the start of the main activity (boiler warm-up).
    ``holiday_level`` is the day level on public holidays (``None``: the Sunday level);
    ``vacation_level`` multiplies the day level during campus vacations (``None``: no effect).
    """

    name: str
    start_h: float
    end_h: float
    day_levels: tuple[float, float, float, float, float, float, float]
    ramp_h: float = 0.5
    dips: tuple[tuple[float, float, float], ...] = ()
    hourly: tuple[float, ...] | None = None
    holiday_level: float | None = None
    vacation_level: float | None = None

    def __post_init__(self) -> None:
        if self.hourly is not None and len(self.hourly) != 24:
            raise ValueError(
                f"schedule {self.name}: hourly needs 24 values, got {len(self.hourly)}"
            )
        levels = [*self.day_levels, *(self.hourly or ()), self.holiday_level or 0.0,
                  self.vacation_level or 0.0]
        if any(not 0.0 <= v <= 1.0 for v in levels):
            raise ValueError(f"schedule {self.name}: levels must lie in [0, 1]")

    def level(self, weekday: int, holiday: bool = False, vacation: bool = False) -> float:
        """Day level [0-1] on ``weekday`` (0 = Monday), on a public holiday, in a vacation."""
        level = self.day_levels[weekday]
        if holiday:
            level = self.day_levels[6] if self.holiday_level is None else self.holiday_level
        if vacation and self.vacation_level is not None:
            level *= self.vacation_level
        return level

    def activity(
        self, hour: float, weekday: int, holiday: bool = False, vacation: bool = False
    ) -> float:
        """Activity level [0-1] at local ``hour`` [h, 0-24) on ``weekday`` (0 = Monday)."""
        level = self.level(weekday, holiday, vacation)
        if level <= 0.0:
            return 0.0
        if self.hourly is not None:
            h0 = int(hour) % 24
            f = hour - math.floor(hour)
            a = level * (self.hourly[h0] + (self.hourly[(h0 + 1) % 24] - self.hourly[h0]) * f)
        else:
            if hour < self.start_h or hour >= self.end_h:
                return 0.0
            up = min(1.0, (hour - self.start_h) / self.ramp_h)
            down = min(1.0, (self.end_h - hour) / self.ramp_h)
            a = level * min(up, down)
        for centre, half, depth in self.dips:
            d = abs(hour - centre)
            if d < half:
                a *= 1.0 - depth * (1.0 - d / half)
        return a


SCHEDULES: dict[str, Schedule] = {
    # Enterprise A, electronics assembly: two shifts 08-16 and 16-24, Monday to Saturday.
    "two_shift": Schedule(
        "two_shift", 8.0, 24.0, (1.0, 1.0, 1.0, 1.0, 1.0, 0.85, 0.0),
        dips=((12.0, 0.5, 0.12), (16.0, 0.25, 0.25), (20.0, 0.5, 0.12)),
    ),
    # Enterprise B, food processing: day shift 07-19, half a Saturday.
    "day_shift": Schedule(
        "day_shift", 7.0, 19.0, (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.0), dips=((12.0, 0.5, 0.15),),
    ),
    # Service centre: office hours 08:30-18:00, a few people at weekends.
    "office": Schedule(
        "office", 8.5, 18.0, (1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.2), dips=((12.25, 0.75, 0.2),),
    ),
    # Continuous process (chemicals, metals): three shifts round the clock, every day.
    "three_shift": Schedule(
        "three_shift", 0.0, 24.0, (1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9),
        dips=((8.0, 0.25, 0.15), (16.0, 0.25, 0.15)), hourly=(0.92,) * 24, holiday_level=0.85,
    ),
    # Data centre: flat, every hour of the year; IT load follows a mild business-day bump.
    "continuous": Schedule(
        "continuous", 0.0, 24.0, (1.0,) * 7,
        hourly=(0.6, 0.55, 0.5, 0.5, 0.5, 0.55, 0.65, 0.75, 0.9, 1.0, 1.0, 1.0,
                1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 0.9, 0.85, 0.8, 0.7, 0.65),
        holiday_level=1.0,
    ),
    # Public institution office (government, hospital administration): 08:30-17:30 weekdays.
    "gov_office": Schedule(
        "gov_office", 8.5, 17.5, (1.0, 1.0, 1.0, 1.0, 1.0, 0.12, 0.08),
        dips=((12.5, 0.8, 0.3),), holiday_level=0.05,
    ),
    # Teaching building: classes 08:00-21:30 (evening self-study), quiet at weekends, nearly
    # closed in vacations.
    "teaching": Schedule(
        "teaching", 8.0, 21.5, (1.0, 1.0, 1.0, 1.0, 0.9, 0.3, 0.25),
        dips=((12.0, 0.9, 0.35), (18.0, 0.6, 0.3)), holiday_level=0.1, vacation_level=0.12,
    ),
    # Dormitory: night base, morning rush, evening peak until lights-out at 23:30.
    "dormitory": Schedule(
        "dormitory", 6.5, 23.5, (1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.95),
        hourly=(0.3, 0.25, 0.22, 0.2, 0.2, 0.2, 0.35, 0.6, 0.45, 0.3, 0.3, 0.35,
                0.5, 0.45, 0.35, 0.35, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0, 0.95, 0.55),
        holiday_level=0.45, vacation_level=0.15,
    ),
    # Canteen: breakfast, lunch and dinner service.
    "canteen": Schedule(
        "canteen", 6.0, 19.5, (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6),
        hourly=(0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.6, 0.8, 0.4, 0.3, 0.6, 1.0,
                0.9, 0.4, 0.25, 0.3, 0.6, 0.95, 0.8, 0.3, 0.15, 0.1, 0.05, 0.05),
        holiday_level=0.35, vacation_level=0.25,
    ),
    # Homes: night base, morning peak, evening peak 19-22; a bit higher at weekends.
    "residential": Schedule(
        "residential", 6.5, 23.0, (0.95, 0.95, 0.95, 0.95, 0.97, 1.0, 1.0),
        hourly=(0.35, 0.3, 0.28, 0.27, 0.27, 0.3, 0.45, 0.65, 0.55, 0.45, 0.45, 0.55,
                0.6, 0.5, 0.45, 0.45, 0.5, 0.7, 0.9, 1.0, 1.0, 0.95, 0.8, 0.55),
        holiday_level=1.0,
    ),
    # Shopping mall / commercial complex: 10:00-22:00 every day, busiest at weekends.
    "retail": Schedule(
        "retail", 9.5, 22.5, (0.8, 0.8, 0.8, 0.82, 0.88, 1.0, 1.0), ramp_h=1.0,
        holiday_level=1.0,
    ),
    # Scenic area facilities (visitor centre, shops): opening hours 08:00-18:30.
    "scenic": Schedule(
        "scenic", 7.5, 18.5, (0.8, 0.8, 0.8, 0.8, 0.85, 1.0, 1.0), ramp_h=0.75,
        holiday_level=1.0,
    ),
    # Hotel: guests in the morning and the evening, every day.
    "hotel": Schedule(
        "hotel", 6.0, 24.0, (0.75, 0.75, 0.75, 0.8, 0.95, 1.0, 0.9),
        hourly=(0.35, 0.3, 0.3, 0.3, 0.3, 0.35, 0.6, 0.85, 0.7, 0.5, 0.45, 0.45,
                0.5, 0.45, 0.45, 0.5, 0.55, 0.7, 0.9, 1.0, 1.0, 0.95, 0.75, 0.5),
        holiday_level=1.0,
    ),
}

#: Group name -> schedule name (exact match); other groups by :data:`GROUP_KEYWORDS`, then by
#: the site type's default (:data:`SITE_TYPE_SCHEDULES`), then ``office``.
GROUP_SCHEDULES: dict[str, str] = {
    "enterprise-a": "two_shift",
    "enterprise-b": "day_shift",
    "service-centre": "office",
}

#: ``(keywords, schedule)``: the first rule with a keyword contained in the group name wins.
GROUP_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("three-shift", "continuous-process", "chem", "steel", "metal", "glass"), "three_shift"),
    (("two-shift", "electronics", "assembly"), "two_shift"),
    (("canteen", "restaurant", "kitchen", "food-court"), "canteen"),
    (("day-shift", "food-processing", "textile", "workshop"), "day_shift"),
    (("data-centre", "datacentre", "data-center", "idc"), "continuous"),
    (("dorm",), "dormitory"),
    (("teach", "library", "lab", "classroom"), "teaching"),
    (("resid", "household", "apartment", "home"), "residential"),
    (("mall", "retail", "shop", "commercial"), "retail"),
    (("hotel", "inn", "lodge"), "hotel"),
    (("scenic", "visitor", "ropeway", "museum"), "scenic"),
    (("gov", "admin", "institution", "hospital-admin"), "gov_office"),
    (("office", "service"), "office"),
)

#: Schedule of meters without group (site level) and of unmatched groups, by site type.
SITE_TYPE_SCHEDULES: dict[str, str] = {
    "park": "office",
    "enterprise": "day_shift",
    "campus": "teaching",
    "community": "residential",
    "scenic_area": "scenic",
    "commercial": "retail",
    "public_institution": "gov_office",
    "building": "office",
}


def schedule_for(group: str | None, site_type: str | None = None) -> Schedule:
    """The :class:`Schedule` of a meter group: exact :data:`GROUP_SCHEDULES` entry, else the
    first matching :data:`GROUP_KEYWORDS` rule, else the site type's default."""
    if group is not None and group in GROUP_SCHEDULES:
        return SCHEDULES[GROUP_SCHEDULES[group]]
    g = (group or "").lower()
    if g:
        for keywords, name in GROUP_KEYWORDS:
            if any(k in g for k in keywords):
                return SCHEDULES[name]
    return SCHEDULES[SITE_TYPE_SCHEDULES.get(site_type or "", "office")]

#: Peak of a parent meter's unmetered own load, as a fraction of its ``max_rate_per_h``, by group
#: (loads behind the parent that no sub-meter sees). ``None`` = site level (park common areas).
UNMETERED_PEAK_FRACTION: dict[str | None, float] = {
    "enterprise-a": 0.04,  # lighting, compressed air
    "enterprise-b": 0.22,  # production lines without sub-meters
    "service-centre": 0.35,  # offices, lighting, HVAC
    None: 0.006,  # park common areas (plus street lighting after dark, below)
}
_DEFAULT_UNMETERED = 0.05


class LoadKind(StrEnum):
    """The shape a meter follows."""

    LINE = "line"
    HVAC = "hvac"
    COLD_STORE = "cold_store"
    EV = "ev"
    EV_HOME = "ev_home"
    GAS_PROCESS = "gas_process"
    GAS_BOILER = "gas_boiler"
    GAS_KITCHEN = "gas_kitchen"
    GAS_HOME = "gas_home"
    WATER = "water"
    IT_LOAD = "it_load"
    DC_FACILITY = "dc_facility"
    BUILDING = "building"
    LIGHTING = "lighting"
    VISITOR = "visitor"
    WASTE_HEAT = "waste_heat"
    HEAT = "heat"
    GENERIC = "generic"
    PV = "pv"
    EXPORT = "export"


@dataclass(frozen=True)
class _KindParams:
    """Per-kind constants: ``shape_max`` bounds the shape [fraction of max rate]; ``slot_noise``
    and ``smooth_noise`` are the amplitudes of the per-slot and 15-minute noise."""

    shape_max: float
    slot_noise: float
    smooth_noise: float


_KIND_PARAMS: dict[LoadKind, _KindParams] = {
    LoadKind.LINE: _KindParams(0.55, 0.05, 0.05),
    LoadKind.HVAC: _KindParams(0.50, 0.05, 0.08),
    LoadKind.COLD_STORE: _KindParams(0.55, 0.10, 0.05),
    LoadKind.EV: _KindParams(0.66, 0.20, 0.08),
    LoadKind.EV_HOME: _KindParams(0.58, 0.20, 0.08),
    LoadKind.GAS_PROCESS: _KindParams(0.35, 0.06, 0.05),
    LoadKind.GAS_BOILER: _KindParams(0.51, 0.06, 0.05),
    LoadKind.GAS_KITCHEN: _KindParams(0.62, 0.12, 0.05),
    LoadKind.GAS_HOME: _KindParams(0.55, 0.10, 0.05),
    LoadKind.WATER: _KindParams(0.42, 0.10, 0.05),
    LoadKind.IT_LOAD: _KindParams(0.50, 0.02, 0.02),
    LoadKind.DC_FACILITY: _KindParams(0.30, 0.03, 0.03),  # bound: overhead x IT load, below
    LoadKind.BUILDING: _KindParams(0.50, 0.05, 0.06),
    LoadKind.LIGHTING: _KindParams(0.63, 0.02, 0.02),
    LoadKind.VISITOR: _KindParams(0.60, 0.05, 0.05),
    LoadKind.WASTE_HEAT: _KindParams(0.47, 0.05, 0.05),
    LoadKind.HEAT: _KindParams(0.48, 0.05, 0.05),
    LoadKind.GENERIC: _KindParams(0.32, 0.05, 0.05),
}
_DAY_FACTOR_MIN, _DAY_FACTOR_MAX = 0.93, 1.05
_LOSS_MIN, _LOSS_SPAN, _LOSS_WANDER = 0.05, 0.06, 0.04  # losses in [0.05, 0.15]
_PV_DERATE = 0.78  # DC/AC and temperature losses: output at 1000 W/m2 per unit of max rate
# Data-centre facility load (cooling, UPS losses, lighting) per unit of IT load: 0.12 in winter
# to 0.22 in summer plus noise, i.e. a PUE of about 1.2-1.4 with the feeder's losses.
_DC_OVERHEAD_BASE, _DC_OVERHEAD_SUMMER, _DC_OVERHEAD_NOISE = 0.12, 0.10, 0.02
# Public lighting switches on below this solar elevation (cos of the zenith angle, ~3 deg).
_LIGHTS_ON_COS_ZENITH = 0.052

_BUILDING_WORDS = (
    "dorm", "resid", "household", "apartment", "teach", "library", "lab", "office", "mall",
    "shop", "retail", "hotel", "build", "hall", "hospital", "clinic", "school", "museum",
    "station", "centre", "center", "block", "tower", "canteen",
)
_VISITOR_WORDS = ("ropeway", "cable", "visitor", "shuttle", "toilet", "gate", "boat", "tram")
_HOME_SITE_TYPES = frozenset({"community", "town"})


def classify_meter(meter: Meter, site_type: str | None = None) -> LoadKind:
    """Infer a leaf meter's shape from its carrier, id keywords and its site's type.

    Keywords in the meter id: ``hvac``/``chiller``, ``cold``/``freez``, ``light``/``lamp``,
    ``facility``/``cooling`` (data-centre facility load), ``boiler``, ``canteen``/``kitchen``/
    ``restaurant``, visitor-driven loads (``ropeway``, ``cable``, ``visitor``, ``shuttle``,
    ``toilet``, ...), buildings (``dorm``, ``resid``, ``teach``, ``office``, ``mall``, ...).
    EV chargers and gas in a ``community`` charge and cook like homes; other electricity
    follows a production line in a park or enterprise and a building elsewhere.
    """
    mid = meter.meter_id.lower()
    c = meter.carrier
    homes = site_type in _HOME_SITE_TYPES or "resid" in mid or "household" in mid
    if c is Carrier.ONSITE_RENEWABLE:
        return LoadKind.PV
    if c is Carrier.GRID_EXPORT:
        return LoadKind.EXPORT
    if c is Carrier.EV_CHARGING:
        return LoadKind.EV_HOME if homes else LoadKind.EV
    if c is Carrier.IT_LOAD:
        return LoadKind.IT_LOAD
    if c is Carrier.WASTE_HEAT:
        return LoadKind.WASTE_HEAT
    if c is Carrier.HEAT:
        return LoadKind.HEAT
    if c in (Carrier.NATURAL_GAS, Carrier.LPG):
        if "boiler" in mid:
            return LoadKind.GAS_BOILER
        if "canteen" in mid or "kitchen" in mid or "restaurant" in mid:
            return LoadKind.GAS_KITCHEN
        if homes:
            return LoadKind.GAS_HOME
        return LoadKind.GAS_PROCESS
    if c is Carrier.WATER:
        return LoadKind.WATER
    if c is Carrier.GRID_IMPORT:
        if "hvac" in mid or "chiller" in mid:
            return LoadKind.HVAC
        if "cold" in mid or "freez" in mid:
            return LoadKind.COLD_STORE
        if "light" in mid or "lamp" in mid:
            return LoadKind.LIGHTING
        if "facility" in mid or "cooling" in mid:
            return LoadKind.DC_FACILITY
        if any(w in mid for w in _VISITOR_WORDS):
            return LoadKind.VISITOR
        industrial = site_type in (None, "park", "enterprise") or "line" in mid
        if industrial and (site_type is None or not any(w in mid for w in _BUILDING_WORDS)):
            return LoadKind.LINE
        return LoadKind.BUILDING
    return LoadKind.GENERIC


def _bell(hour: float, centre: float, sigma: float) -> float:
    """Gaussian bump [0-1] around ``centre`` [h] with width ``sigma`` [h]."""
    z = (hour - centre) / sigma
    return math.exp(-0.5 * z * z)


def _summer(doy: int) -> float:
    """0..1, 1 at the end of July (hottest in Chengdu)."""
    return 0.5 + 0.5 * math.cos(_TWO_PI * (doy - 205) / 365.0)


def _winter(doy: int) -> float:
    """0..1, 1 in mid-January."""
    return 0.5 + 0.5 * math.cos(_TWO_PI * (doy - 15) / 365.0)


@dataclass(frozen=True)
class _Local:
    """Local calendar facts of one slot at one site: ``sun`` is the cosine of the solar zenith
    angle at the slot's midpoint; ``visitors`` the visitors present as a fraction [0-1] of the
    site's largest possible crowd (scenic areas; 0 elsewhere)."""

    hour: float
    weekday: int
    doy: int
    day: int  # proleptic ordinal of the local date
    holiday: bool = False
    vacation: bool = False
    sun: float = 0.0
    visitors: float = 0.0


def _shape(kind: LoadKind, sched: Schedule, lt: _Local) -> float:
    """Shape of a leaf load [fraction of the meter's max rate], before per-meter factors and
    noise. Bounded by ``_KIND_PARAMS[kind].shape_max``."""
    h, wd = lt.hour, lt.weekday
    act = sched.activity(h, wd, lt.holiday, lt.vacation)
    if kind is LoadKind.LINE:
        return 0.03 + 0.52 * act
    if kind is LoadKind.HVAC:
        season = 0.55 + 0.45 * max(_summer(lt.doy), 0.7 * _winter(lt.doy))
        afternoon = 0.85 + 0.15 * _bell(h, 15.0, 2.5)
        return 0.04 + 0.46 * act * season * afternoon
    if kind is LoadKind.COLD_STORE:
        return 0.28 + 0.05 * _summer(lt.doy) + 0.22 * act
    if kind is LoadKind.EV:
        workday = wd < 5 and not lt.holiday
        morning = 0.13 if (workday and 9.0 <= h < 12.0) else 0.0
        evening = 0.5 * _bell(h, 19.5, 1.8) * (1.0 if workday else 0.6)
        return 0.02 + morning + evening
    if kind is LoadKind.EV_HOME:
        # Cars plugged in on arrival in the evening, most charging in the valley tariff
        # 23:00-07:00 (Sichuan/Guangdong time-of-use), tapering off before 07:00.
        if h >= 23.0 or h < 5.0:
            valley = 0.3
        elif h < 7.0:
            valley = 0.3 * (7.0 - h) / 2.0
        else:
            valley = 0.0
        return 0.03 + 0.24 * _bell(h, 20.5, 1.5) + valley
    if kind is LoadKind.GAS_PROCESS:
        return 0.01 + 0.34 * act * (0.85 + 0.15 * _winter(lt.doy))
    if kind is LoadKind.GAS_BOILER:
        level = sched.level(wd, lt.holiday, lt.vacation)
        warm = 0.5 * level * max(0.0, 1.0 - abs(h - (sched.start_h - 0.5)) / 0.5)
        run = 0.4 * act * (0.75 + 0.25 * _winter(lt.doy))
        return 0.01 + max(warm, run)
    if kind is LoadKind.GAS_KITCHEN:
        day_k = 0.4 if lt.holiday else (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.4)[wd]
        if lt.vacation and sched.vacation_level is not None:
            day_k *= sched.vacation_level
        meals = 0.2 * _bell(h, 7.5, 0.4) + 0.6 * _bell(h, 11.8, 0.55) + 0.45 * _bell(h, 17.8, 0.5)
        return 0.01 + day_k * min(meals, 0.61)
    if kind is LoadKind.GAS_HOME:
        # Home cooking and water heating: breakfast, lunch, a long evening (dinner, showers).
        meals = 0.18 * _bell(h, 7.3, 0.6) + 0.25 * _bell(h, 11.9, 0.6) + 0.45 * _bell(h, 19.0, 1.1)
        return 0.02 + min(meals, 0.5) * (0.8 + 0.2 * _winter(lt.doy))
    if kind is LoadKind.WATER:
        return 0.02 + 0.4 * act
    if kind is LoadKind.IT_LOAD:
        return 0.45 + 0.05 * act
    if kind is LoadKind.BUILDING:
        season = 0.7 + 0.3 * max(_summer(lt.doy), 0.8 * _winter(lt.doy))
        return 0.06 + 0.44 * act * season
    if kind is LoadKind.LIGHTING:
        if lt.sun >= _LIGHTS_ON_COS_ZENITH:
            return 0.03
        late = lt.hour >= 23.0 or lt.hour < 5.5  # half the lamps after 23:00
        return 0.03 + (0.36 if late else 0.6)
    if kind is LoadKind.VISITOR:
        return 0.05 + 0.55 * lt.visitors
    if kind is LoadKind.WASTE_HEAT:
        return 0.02 + 0.45 * act * (0.85 + 0.15 * _winter(lt.doy))
    if kind is LoadKind.HEAT:
        return 0.03 + 0.45 * act * (0.5 + 0.5 * _winter(lt.doy))
    return 0.02 + 0.3 * act


# --------------------------------------------------------------------------- visitors

#: Visitors per day [persons] entering a scenic area on an average weekday in spring or autumn
#: before the day-of-week, holiday, season and day factors (a default: real sites enter their
#: counts as monthly denominators).
VISITOR_BASE_PER_DAY = 4000.0
_VISITOR_DOW = (0.55, 0.5, 0.5, 0.55, 0.7, 1.0, 0.9)  # Monday..Sunday
_VISITOR_HOLIDAY = 2.0
_VISITOR_DAY_NOISE = 0.15  # day factor in [0.85, 1.15]
_VISITOR_DAY_MAX = _VISITOR_HOLIDAY * (1.0 + 0.15) * (1.0 + _VISITOR_DAY_NOISE)
# Arrivals: a bell around 10:30 (sigma 1.6 h) cut to the opening hours 07:30-17:00.
_ARRIVE_MU, _ARRIVE_SIGMA, _OPEN_H, _LAST_ENTRY_H = 10.5, 1.6, 7.5, 17.0


def _phi(x: float) -> float:
    """Standard normal cumulative distribution."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


_ARRIVE_NORM = _phi((_LAST_ENTRY_H - _ARRIVE_MU) / _ARRIVE_SIGMA) - _phi(
    (_OPEN_H - _ARRIVE_MU) / _ARRIVE_SIGMA
)


def arrivals_fraction(h0: float, h1: float) -> float:
    """Share [0-1] of a day's visitors that enter between local hours ``h0`` and ``h1`` [h]."""
    lo, hi = max(h0, _OPEN_H), min(h1, _LAST_ENTRY_H)
    if hi <= lo:
        return 0.0
    z = (_phi((hi - _ARRIVE_MU) / _ARRIVE_SIGMA) - _phi((lo - _ARRIVE_MU) / _ARRIVE_SIGMA))
    return z / _ARRIVE_NORM


def _presence(hour: float) -> float:
    """Visitors present [0-1 of the day's crowd peak] at local ``hour`` [h]: 0 before 07:30
    and after 18:30."""
    if hour < _OPEN_H or hour >= 18.5:
        return 0.0
    return _bell(hour, 12.8, 2.6)


# --------------------------------------------------------------------------- sun


#: City -> (latitude [deg N], longitude [deg E]) for the solar position; unknown cities use
#: latitude 30 deg N and the longitude of the site's time zone meridian.
CITY_COORDINATES: dict[str, tuple[float, float]] = {
    "chengdu": (30.67, 104.07),
    "hechi": (24.69, 108.09),
    "guangzhou": (23.13, 113.26),
    "shenzhen": (22.54, 114.06),
    "dujiangyan": (30.99, 103.65),
    "bama": (24.14, 107.26),
    "foshan": (23.02, 113.12),
    "dongguan": (23.02, 113.75),
}


def solar_cos_zenith(t_s: float, lat_deg: float, lon_deg: float) -> float:
    """Cosine of the solar zenith angle [-] at Unix time ``t_s`` [s] (UTC) for a place at
    ``lat_deg`` [deg N], ``lon_deg`` [deg E].

    Declination after Cooper (1969), ``23.45 sin(360 (284 + n) / 365)`` [deg]; equation of time
    ``9.87 sin 2B - 7.53 cos B - 1.5 sin B`` [min] with ``B = 360 (n - 81) / 364`` (PVEducation);
    accuracy of a few tenths of a degree, ample for a load simulator.
    """
    days = t_s / 86400.0
    n = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t_s)).timetuple().tm_yday
    decl = math.radians(23.45) * math.sin(_TWO_PI * (284 + n) / 365.0)
    b = _TWO_PI * (n - 81) / 364.0
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    utc_h = (days - math.floor(days)) * 24.0
    solar_h = utc_h + lon_deg / 15.0 + eot_min / 60.0
    omega = math.radians(15.0 * (solar_h - 12.0))
    lat = math.radians(lat_deg)
    return math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(omega)


def haurwitz_ghi_w_m2(cos_zenith: float) -> float:
    """Clear-sky global horizontal irradiance [W/m2] after Haurwitz (1945), as in pvlib
    ``clearsky.haurwitz``: ``1098 cos z exp(-0.057 / cos z)``; 0 when the sun is down."""
    if cos_zenith <= 0.0:
        return 0.0
    return 1098.0 * cos_zenith * math.exp(-0.057 / cos_zenith)


_HAURWITZ_MAX = 1098.0 * math.exp(-0.057)  # at zenith [W/m2]


# --------------------------------------------------------------------------- registers


def register_resolution(unit: str) -> float:
    """Smallest register step published for a meter in ``unit`` [unit]: 1 for the small units
    (Wh, L, MJ), 0.001 otherwise."""
    return 1.0 if unit in ("Wh", "L", "MJ") else 0.001


def _quantize(value: float, resolution: float, register_max: float) -> float:
    """Floor ``value`` to the register resolution (monotone; stays below ``register_max``)."""
    steps = math.floor(value / resolution)
    top = math.ceil(register_max / resolution) - 1
    steps = min(steps, top)
    digits = max(0, -math.floor(math.log10(resolution) + 1e-9))
    return round(steps * resolution, digits)


# --------------------------------------------------------------------------- the simulation


class _Role(StrEnum):
    LEAF = "leaf"
    PARENT = "parent"
    CONNECTION = "connection"  # site grid connection, net of PV
    PV = "pv"
    PV_SUB = "pv_sub"  # PV behind a sub-meter: simulated, not netted anywhere
    FACILITY = "facility"  # data-centre facility load: overhead x its IT siblings
    EXPORT = "export"


@dataclass
class _Model:
    """Everything constant about one simulated meter."""

    index: int
    meter: Meter
    role: _Role
    kind: LoadKind
    schedule: Schedule
    max_canonical: float  # max rate in canonical unit per hour
    to_unit: float  # canonical -> meter unit multiplier
    peak_factor: float
    loss_base: float
    k_slot: int
    k_smooth: int
    k_day: int
    k_loss: int
    children: tuple[int, ...] = ()
    unmetered: float = 0.0  # peak own load, fraction of max
    bound: float = 0.0  # upper bound of the unscaled rate [canonical/h]
    scale: float = 1.0
    depth: int = 0
    noise: _KindParams = field(default_factory=lambda: _KindParams(0.0, 0.0, 0.0))
    peers: tuple[int, ...] = ()  # FACILITY: the IT-load meters it serves


@dataclass
class _SiteModel:
    site: Site
    tz: ZoneInfo
    lat: float
    lon: float
    k_cloud_day: int
    k_cloud: int
    k_flicker: int
    k_visitors: int = 0
    scenic: bool = False
    pv: tuple[int, ...] = ()
    exports: tuple[int, ...] = ()
    connection: int | None = None


def _to_ms(t: datetime) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t.isoformat()} has no UTC offset; pass an aware datetime")
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


class SiteSimulation:
    """Deterministic rates and cumulative registers of every meter in ``registry``, for sites
    of every pilot type (the site's ``type`` selects default schedules and shapes).

    ``seed`` selects the noise, initial registers and cloudiness; ``start_utc`` (aware) is the
    instant at which each register holds its initial value; ``slot_s`` [s] is the resolution of
    the rate (rates are constant inside a slot aligned to the Unix epoch).
    ``initial_registers`` overrides the seeded initial register [meter unit] of some meters
    (for instance to force a rollover); ``kinds`` overrides :func:`classify_meter` per meter id;
    ``schedules`` maps group names to :data:`SCHEDULES` names (overriding :func:`schedule_for`).

    Registers are integrated forward from ``start_utc``; asking for an earlier time than the
    last one asked recomputes from the start (same result, bit for bit).
    """

    def __init__(
        self,
        registry: Registry,
        seed: int,
        start_utc: datetime,
        *,
        slot_s: int = 60,
        initial_registers: Mapping[str, float] | None = None,
        kinds: Mapping[str, LoadKind] | None = None,
        schedules: Mapping[str, str] | None = None,
    ) -> None:
        if slot_s <= 0:
            raise ValueError(f"slot_s must be > 0 s, got {slot_s}")
        for group, name in (schedules or {}).items():
            if name not in SCHEDULES:
                raise ValueError(
                    f"schedule {name!r} for group {group!r}; accepted: {', '.join(SCHEDULES)}"
                )
        self._group_schedules = dict(schedules or {})
        self._start_ms = _to_ms(start_utc)  # rejects naive datetimes
        self.registry = registry
        self.seed = seed
        self.start_utc = start_utc.astimezone(UTC)
        self.slot_s = slot_s
        self._slot_ms = slot_s * 1000
        self.meters: tuple[Meter, ...] = tuple(registry.meters.values())
        self._ids = tuple(m.meter_id for m in self.meters)
        self._index = {mid: i for i, mid in enumerate(self._ids)}
        self._sites: dict[str, _SiteModel] = {}
        self._models: list[_Model] = []
        self._build(kinds or {})
        self._order = self._evaluation_order()

        self.initial_registers: dict[str, float] = {}
        init = dict(initial_registers or {})
        unknown = sorted(set(init) - set(self._ids))
        if unknown:
            raise ValueError(f"initial_registers names unknown meters: {', '.join(unknown)}")
        for m in self.meters:
            if m.meter_id in init:
                v = float(init[m.meter_id])
                if not 0.0 <= v < m.register_max:
                    raise ValueError(
                        f"initial register of {m.meter_id} is {v}; accepted: "
                        f"0 <= value < register_max {m.register_max}"
                    )
            else:
                u = _u01(_key(seed, "init", m.meter_id), 0)
                res = register_resolution(m.unit)
                v = _quantize(m.register_max * (0.02 + 0.6 * u), res, m.register_max)
            self.initial_registers[m.meter_id] = v

        self._rate_cache: dict[int, tuple[float, ...]] = {}
        self._reset_integration()

    # ----------------------------------------------------------------- construction

    def _build(self, kinds: Mapping[str, LoadKind]) -> None:
        reg = self.registry
        index = self._index
        for site in reg.sites.values():
            city = site.city.strip().lower()
            tz = ZoneInfo(site.timezone)
            if city in CITY_COORDINATES:
                lat, lon = CITY_COORDINATES[city]
            else:
                off = self.start_utc.astimezone(tz).utcoffset() or timedelta(0)
                lat, lon = 30.0, off.total_seconds() / 240.0
            self._sites[site.site_id] = _SiteModel(
                site=site, tz=tz, lat=lat, lon=lon,
                k_cloud_day=_key(self.seed, "cloud-day", site.site_id),
                k_cloud=_key(self.seed, "cloud", site.site_id),
                k_flicker=_key(self.seed, "flicker", site.site_id),
                k_visitors=_key(self.seed, "visitors", site.site_id),
                scenic=site.site_type == "scenic_area",
            )
        children: dict[str, list[int]] = {mid: [] for mid in self._ids}
        for m in self.meters:
            if m.parent_id is not None and m.carrier not in (
                Carrier.ONSITE_RENEWABLE, Carrier.GRID_EXPORT
            ):
                parent = reg.meters[m.parent_id]
                if CANONICAL_UNIT[parent.carrier] != CANONICAL_UNIT[m.carrier]:
                    raise ValueError(
                        f"meter {m.meter_id} ({m.carrier.value}) cannot be a child of "
                        f"{parent.meter_id} ({parent.carrier.value}): units differ"
                    )
                children[m.parent_id].append(index[m.meter_id])

        for i, m in enumerate(self.meters):
            site_type = reg.sites[m.site_id].site_type if m.site_id in reg.sites else None
            kind = kinds.get(m.meter_id, classify_meter(m, site_type))
            group = m.group
            if group is not None and group in self._group_schedules:
                sched = SCHEDULES[self._group_schedules[group]]
            else:
                sched = schedule_for(group, site_type)
            role = _Role.PARENT if children[m.meter_id] else _Role.LEAF
            if m.parent_id is None and kind is LoadKind.PV:
                role = _Role.PV
            elif m.parent_id is None and kind is LoadKind.EXPORT:
                role = _Role.EXPORT
            elif kind is LoadKind.PV and role is _Role.LEAF:
                role = _Role.PV_SUB
            elif kind is LoadKind.DC_FACILITY and role is _Role.LEAF and m.parent_id is not None:
                peers = tuple(
                    c for c in children[m.parent_id]
                    if self.meters[c].carrier is Carrier.IT_LOAD
                )
                if peers:
                    role = _Role.FACILITY
                else:
                    kind = LoadKind.HVAC  # a cooling meter without IT siblings: plain HVAC
            self._models.append(
                _Model(
                    index=i, meter=m, role=role, kind=kind, schedule=sched,
                    max_canonical=m.max_rate_per_h * m.to_canonical,
                    to_unit=1.0 / m.to_canonical,
                    peak_factor=0.85 + 0.15 * _u01(_key(self.seed, "peak", m.meter_id), 0),
                    loss_base=_LOSS_MIN + _LOSS_SPAN * _u01(_key(self.seed, "loss", m.meter_id), 0),
                    k_slot=_key(self.seed, "slot", m.meter_id),
                    k_smooth=_key(self.seed, "smooth", m.meter_id),
                    k_day=_key(self.seed, "day", m.meter_id),
                    k_loss=_key(self.seed, "loss-wander", m.meter_id),
                    children=tuple(children[m.meter_id]),
                    unmetered=UNMETERED_PEAK_FRACTION.get(group, _DEFAULT_UNMETERED),
                    noise=_KIND_PARAMS.get(kind, _KindParams(0.0, 0.0, 0.0)),
                )
            )
            if role is _Role.FACILITY and m.parent_id is not None:
                self._models[-1].peers = tuple(
                    c for c in children[m.parent_id] if self.meters[c].carrier is Carrier.IT_LOAD
                )

        # Site connection meters and PV / export lists.
        for sm in self._sites.values():
            sid = sm.site.site_id
            mine = [md for md in self._models if md.meter.site_id == sid]
            sm.pv = tuple(md.index for md in mine if md.role is _Role.PV)
            sm.exports = tuple(md.index for md in mine if md.role is _Role.EXPORT)
            roots = [
                md for md in mine
                if md.meter.parent_id is None and md.meter.carrier is Carrier.GRID_IMPORT
            ]
            if sm.pv and roots:
                # With several top-level import meters, PV is netted against the largest.
                conn = max(roots, key=lambda md: (md.max_canonical, -md.index))
                conn.role = _Role.CONNECTION
                sm.connection = conn.index

        for md in self._models:
            d, p = 0, md.meter.parent_id
            while p is not None:
                d += 1
                p = reg.meters[p].parent_id
                if d > len(self._models):
                    raise ValueError(f"meter {md.meter.meter_id}: parent chain has a cycle")
            md.depth = d
        self._compute_bounds()

    def _leaf_bound(self, md: _Model) -> float:
        n = md.noise
        return (
            md.max_canonical * n.shape_max * _DAY_FACTOR_MAX * (1.0 + n.slot_noise + n.smooth_noise)
        )

    def _own_bound(self, md: _Model) -> float:
        night = 0.008 if md.meter.group is None else 0.0
        return md.max_canonical * (md.unmetered + night) * _DAY_FACTOR_MAX

    def _compute_bounds(self) -> None:
        """Closed-form upper bounds per meter, then scale subtrees so that every rate is at most
        ``MAX_RATE_FRACTION`` of its meter's max rate."""
        by_depth = sorted(self._models, key=lambda md: (-md.depth, md.role is _Role.FACILITY))
        for md in by_depth:
            if md.role in (_Role.PARENT, _Role.CONNECTION) and md.children:
                kids = sum(self._models[c].bound for c in md.children)
                md.bound = (kids + self._own_bound(md)) * (1.0 + _LOSS_MIN + _LOSS_SPAN
                                                          + _LOSS_WANDER)
            elif md.role in (_Role.PV, _Role.PV_SUB):
                md.bound = md.max_canonical * _PV_DERATE * _HAURWITZ_MAX / 1000.0
            elif md.role is _Role.FACILITY:
                overhead = _DC_OVERHEAD_BASE + _DC_OVERHEAD_SUMMER + _DC_OVERHEAD_NOISE
                md.bound = overhead * sum(self._models[c].bound for c in md.peers)
            elif md.role is _Role.EXPORT:
                md.bound = 0.0
            else:
                md.bound = self._leaf_bound(md)
        for md in sorted(self._models, key=lambda md: md.depth):
            inherited = 1.0
            if md.meter.parent_id is not None and md.role not in (
                _Role.PV, _Role.PV_SUB, _Role.EXPORT
            ):
                inherited = self._models[self._index[md.meter.parent_id]].scale
            cap = MAX_RATE_FRACTION * md.max_canonical / md.bound if md.bound > 0 else 1.0
            md.scale = min(inherited, cap, 1.0)
        # PV surplus must fit the export meters.
        for sm in self._sites.values():
            if not sm.pv:
                continue
            export_cap = sum(self._models[e].max_canonical for e in sm.exports)
            pv_bound = sum(self._models[p].bound * self._models[p].scale for p in sm.pv)
            if sm.exports and pv_bound > MAX_RATE_FRACTION * export_cap:
                f = MAX_RATE_FRACTION * export_cap / pv_bound
                for p in sm.pv:
                    self._models[p].scale *= f

    def _evaluation_order(self) -> tuple[_Model, ...]:
        """Leaves and PV first, parents deepest first, connections, then exports."""
        rank = {_Role.LEAF: 0, _Role.PV: 0, _Role.PV_SUB: 0, _Role.PARENT: 1, _Role.FACILITY: 1,
                _Role.CONNECTION: 2, _Role.EXPORT: 3}
        return tuple(sorted(
            self._models,
            key=lambda md: (rank[md.role], -md.depth, md.role is _Role.FACILITY, md.index),
        ))

    # ----------------------------------------------------------------- rates

    def _local(self, sm: _SiteModel, t_s: float) -> _Local:
        lt = datetime.fromtimestamp(t_s, sm.tz)
        hour = lt.hour + lt.minute / 60.0 + (lt.second + lt.microsecond / 1e6) / 3600.0
        d = lt.date()
        visitors = 0.0
        if sm.scenic:
            visitors = self._visitor_day(sm, d) / (VISITOR_BASE_PER_DAY * _VISITOR_DAY_MAX)
            visitors *= _presence(hour)
        return _Local(
            hour, lt.weekday(), lt.timetuple().tm_yday, lt.toordinal(),
            holiday=is_public_holiday(d), vacation=is_campus_vacation(d),
            sun=solar_cos_zenith(t_s, sm.lat, sm.lon), visitors=visitors,
        )

    def _visitor_day(self, sm: _SiteModel, d: date) -> float:
        """Visitors entering scenic site ``sm`` on local date ``d`` [persons, not rounded]."""
        dow = _VISITOR_HOLIDAY if is_public_holiday(d) else _VISITOR_DOW[d.weekday()]
        doy = d.timetuple().tm_yday
        season = 0.75 + 0.25 * math.cos(_TWO_PI * (doy - 110) / 182.625)
        if d.month in (7, 8):
            season += 0.15  # school summer holidays
        noise = 1.0 + _VISITOR_DAY_NOISE * (2.0 * _u01(sm.k_visitors, d.toordinal()) - 1.0)
        return VISITOR_BASE_PER_DAY * dow * season * noise

    def _site_model(self, site_id: str) -> _SiteModel:
        sm = self._sites.get(site_id)
        if sm is None:
            raise ValueError(f"unknown site {site_id!r}; known: {', '.join(self._sites)}")
        return sm

    def daily_visitors(self, site_id: str, day: date) -> int:
        """Visitors [persons] entering scenic area ``site_id`` on local date ``day``: seeded,
        higher at weekends, on public holidays (x2), in spring, autumn and the summer school
        holidays. 0 for sites that are not of type ``scenic_area``."""
        sm = self._site_model(site_id)
        return round(self._visitor_day(sm, day)) if sm.scenic else 0

    def visitors_between(self, site_id: str, t0_utc: datetime, t1_utc: datetime) -> float:
        """Visitors [persons] entering scenic area ``site_id`` between two instants: each
        day's count spread over the opening hours (:func:`arrivals_fraction`). Over a whole
        local day the sum is the (unrounded) :meth:`daily_visitors`."""
        sm = self._site_model(site_id)
        if not sm.scenic or t1_utc <= t0_utc:
            return 0.0
        a, b = t0_utc.astimezone(sm.tz), t1_utc.astimezone(sm.tz)
        total, d = 0.0, a.date()
        while d <= b.date():
            h0 = (a - datetime.combine(d, datetime.min.time(), sm.tz)).total_seconds() / 3600.0
            h1 = (b - datetime.combine(d, datetime.min.time(), sm.tz)).total_seconds() / 3600.0
            total += self._visitor_day(sm, d) * arrivals_fraction(max(h0, 0.0), min(h1, 24.0))
            d += timedelta(days=1)
        return total

    def _slot_rates(self, slot: int) -> tuple[float, ...]:
        """Rates of every meter [canonical unit per hour] in slot number ``slot``."""
        cached = self._rate_cache.get(slot)
        if cached is not None:
            return cached
        t_mid = (slot + 0.5) * self.slot_s
        locals_ = {sid: self._local(sm, t_mid) for sid, sm in self._sites.items()}
        rates = [0.0] * len(self._models)
        pv_total: dict[str, float] = {}
        surplus: dict[str, float] = {}
        for md in self._order:
            sid = md.meter.site_id
            lt = locals_[sid]
            if md.role is _Role.PV:
                r = self._pv_rate(md, self._sites[sid], lt, t_mid)
                pv_total[sid] = pv_total.get(sid, 0.0) + r
            elif md.role is _Role.PV_SUB:
                r = self._pv_rate(md, self._sites[sid], lt, t_mid)
            elif md.role is _Role.FACILITY:
                it = 0.0
                for c in md.peers:
                    it += rates[c] / self._models[c].scale
                overhead = (
                    _DC_OVERHEAD_BASE + _DC_OVERHEAD_SUMMER * _summer(lt.doy)
                    + _DC_OVERHEAD_NOISE * _smooth(md.k_smooth, t_mid, 900.0)
                )
                r = md.scale * overhead * it
            elif md.role in (_Role.PARENT, _Role.CONNECTION) and md.children:
                kids = 0.0
                for c in md.children:
                    kids += rates[c]
                r = kids + self._own_rate(md, lt)
                loss = md.loss_base + _LOSS_WANDER * _smooth(md.k_loss, t_mid, 3600.0)
                r *= 1.0 + loss
            elif md.role is _Role.EXPORT:
                sm = self._sites[sid]
                cap = sum(self._models[e].max_canonical for e in sm.exports)
                r = surplus.get(sid, 0.0) * md.max_canonical / cap
            else:
                r = self._leaf_rate(md, lt, slot, t_mid)
            if md.role is _Role.CONNECTION:
                pv = pv_total.get(sid, 0.0)
                surplus[sid] = max(pv - r, 0.0)
                r = max(r - pv, 0.0)
            rates[md.index] = r
        for sid, sm in self._sites.items():
            if sm.connection is None and sm.pv:
                # No grid connection meter: all PV counts as surplus (only exports see it).
                surplus[sid] = pv_total.get(sid, 0.0)
                for e in sm.exports:
                    cap = sum(self._models[x].max_canonical for x in sm.exports)
                    rates[e] = surplus[sid] * self._models[e].max_canonical / cap
        out = tuple(rates)
        if len(self._rate_cache) > 8:
            self._rate_cache.clear()
        self._rate_cache[slot] = out
        return out

    def _factors(self, md: _Model, lt: _Local, slot: int, t_mid: float) -> float:
        day = _DAY_FACTOR_MIN + (_DAY_FACTOR_MAX - _DAY_FACTOR_MIN) * _u01(md.k_day, lt.day)
        n = md.noise
        noise = (
            1.0
            + n.slot_noise * (2.0 * _u01(md.k_slot, slot) - 1.0)
            + n.smooth_noise * (2.0 * _smooth(md.k_smooth, t_mid, 900.0) - 1.0)
        )
        return md.peak_factor * day * noise

    def _leaf_rate(self, md: _Model, lt: _Local, slot: int, t_mid: float) -> float:
        shape = _shape(md.kind, md.schedule, lt)
        return md.max_canonical * md.scale * shape * self._factors(md, lt, slot, t_mid)

    def _own_rate(self, md: _Model, lt: _Local) -> float:
        """Unmetered own load of a parent [canonical/h]: a schedule-shaped share plus street
        lighting for site-level parents."""
        a = md.schedule.activity(lt.hour, lt.weekday, lt.holiday, lt.vacation)
        day = _DAY_FACTOR_MIN + (_DAY_FACTOR_MAX - _DAY_FACTOR_MIN) * _u01(md.k_day, lt.day)
        own = md.unmetered * (0.15 + 0.85 * a)
        if md.meter.group is None and (lt.hour < 6.5 or lt.hour >= 19.0):
            own += 0.008
        return md.max_canonical * md.scale * own * day

    def _pv_rate(self, md: _Model, sm: _SiteModel, lt: _Local, t_mid: float) -> float:
        ghi = haurwitz_ghi_w_m2(solar_cos_zenith(t_mid, sm.lat, sm.lon))
        if ghi <= 0.0:
            return 0.0
        cloud_day = 0.85 * math.pow(_u01(sm.k_cloud_day, lt.day), 1.3)
        clearness = (
            1.0
            - cloud_day * (0.4 + 0.6 * _smooth(sm.k_cloud, t_mid, 1200.0))
            - 0.08 * cloud_day * _u01(sm.k_flicker, math.floor(t_mid / self.slot_s))
        )
        clearness = min(1.0, max(0.05, clearness))
        return md.max_canonical * md.scale * _PV_DERATE * ghi / 1000.0 * clearness

    def rates_at(self, t_utc: datetime) -> dict[str, float]:
        """Rate of every meter [meter unit per hour] in the slot containing ``t_utc``."""
        slot = _to_ms(t_utc) // self._slot_ms
        rates = self._slot_rates(slot)
        return {md.meter.meter_id: rates[md.index] * md.to_unit for md in self._models}

    def slot_bounds(self, t_utc: datetime) -> tuple[datetime, datetime]:
        """Start and end (UTC) of the rate slot containing ``t_utc``."""
        slot = _to_ms(t_utc) // self._slot_ms
        return _from_ms(slot * self._slot_ms), _from_ms((slot + 1) * self._slot_ms)

    # ----------------------------------------------------------------- integration

    def _reset_integration(self) -> None:
        self._next_slot = self._start_ms // self._slot_ms
        self._acc = [0.0] * len(self._models)  # energy [meter unit] up to the cursor

    def _cursor_ms(self) -> int:
        return max(self._start_ms, self._next_slot * self._slot_ms)

    def energy_since_start(self, t_utc: datetime) -> dict[str, float]:
        """Energy (or volume) through every meter from ``start_utc`` to ``t_utc`` [meter unit],
        not wrapped at ``register_max``."""
        t_ms = _to_ms(t_utc)
        if t_ms < self._start_ms:
            raise ValueError(
                f"time {t_utc.isoformat()} is before the simulation start "
                f"{self.start_utc.isoformat()}"
            )
        if t_ms < self._cursor_ms():
            self._reset_integration()
        to_unit = [md.to_unit for md in self._models]
        n = len(self._models)
        while (self._next_slot + 1) * self._slot_ms <= t_ms:
            seg_ms = (self._next_slot + 1) * self._slot_ms - self._cursor_ms()
            rates = self._slot_rates(self._next_slot)
            f = seg_ms / 3_600_000.0
            acc = self._acc
            for i in range(n):
                acc[i] += rates[i] * to_unit[i] * f
            self._next_slot += 1
        partial_ms = t_ms - self._cursor_ms()
        out = list(self._acc)
        if partial_ms > 0:
            rates = self._slot_rates(self._next_slot)
            f = partial_ms / 3_600_000.0
            for i in range(n):
                out[i] += rates[i] * to_unit[i] * f
        return dict(zip(self._ids, out, strict=True))

    def registers_at(self, t_utc: datetime) -> dict[str, float]:
        """Exact (unquantised) register of every meter at ``t_utc`` [meter unit], rolled over
        modulo ``register_max``."""
        energy = self.energy_since_start(t_utc)
        out: dict[str, float] = {}
        for m in self.meters:
            v = math.fmod(self.initial_registers[m.meter_id] + energy[m.meter_id], m.register_max)
            out[m.meter_id] = v
        return out

    def readings_at(self, t_utc: datetime) -> list[tuple[str, float]]:
        """``(meter_id, register)`` for every meter in registry order at ``t_utc``: the register
        [meter unit] floored to :func:`register_resolution`, as a meter would display it."""
        regs = self.registers_at(t_utc)
        return [
            (m.meter_id, _quantize(regs[m.meter_id], register_resolution(m.unit), m.register_max))
            for m in self.meters
        ]

    def rounds(self, interval_s: int) -> Iterator[tuple[datetime, list[tuple[str, float]]]]:
        """Endless reading rounds every ``interval_s`` [s] from ``start_utc`` (included)."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 s, got {interval_s}")
        k = 0
        while True:
            t = _from_ms(self._start_ms + k * interval_s * 1000)
            yield t, self.readings_at(t)
            k += 1


#: The first name of :class:`SiteSimulation`, kept for the sample park's callers.
ParkSimulation = SiteSimulation
