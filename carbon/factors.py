"""Emission factors: data with a source, a year and a unit, and the library that selects them.

Every factor is an :class:`EmissionFactor` expressed in **kgCO2 per canonical unit** of its
carrier (see :mod:`carbon.units`): kgCO2/kWh for electricity (numerically equal to tCO2/MWh),
kgCO2/m3 (normal cubic metres) for natural gas, kgCO2/GJ for heat and kgCO2/kg for liquid fuels
(numerically equal to tCO2/t). Every lookup returns the factor itself, so a caller stores the
``factor_id``, ``version`` and ``value`` that produced each figure.

Identifiers
-----------
A ``factor_id`` names a *series* (one quantity over time); ``version`` names one publication of
it; ``(factor_id, version)`` is unique in a library.

=================================  ==================================================
factor_id                          what
=================================  ==================================================
``grid.avg.<region>``              grid average (``kind="grid_average"``)
``grid.excl_market.<region>``      average excluding market-traded non-fossil power
``grid.fossil.<region>``           fossil power only
``fuel.<carrier>``                 ``fuel.natural_gas``, ``fuel.diesel``, ...
``heat.purchased``                 purchased heat / steam
=================================  ==================================================

``<region>`` is ``national`` or a lowercase pinyin province name (``sichuan``, ``guangxi``,
``guangdong``, ...). Other ids (e.g. the historical ``grid.avg.national.power_sector_2023``)
are never chosen by the year rule; they are used only when named explicitly, through
:meth:`FactorLibrary.get` or an ``override``.

Defaults (DOMAIN.md section 3)
------------------------------
Grid factors: MEE / National Bureau of Statistics announcements 2024 No. 12 (2021 data),
2024 No. 33 (2022 data) and 2025 No. 47 (2023 data). Fuels: default parameters of
GB/T 32150-2015 Appendix B (the same values as the MEE/NDRC enterprise accounting guidelines).
Purchased heat: 0.11 tCO2/GJ. Factors flagged ``check=True`` are defaults that a deployment
must confirm against the published text and may override (:meth:`FactorLibrary.flagged`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from carbon.units import CANONICAL_UNIT, Carrier


class FactorError(ValueError):
    """An invalid factor, factor record or a lookup that has no answer.

    The message names the offending value (record index, field, region, year) and what would be
    accepted.
    """


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

#: Prefix of the factor id of each grid kind: ``f"{prefix}.{region}"``.
GRID_KIND_PREFIX: Mapping[str, str] = {
    "grid_average": "grid.avg",
    "grid_excl_market": "grid.excl_market",
    "grid_fossil": "grid.fossil",
}

KINDS = frozenset({*GRID_KIND_PREFIX, "fuel", "heat"})

#: Carriers that are burned inside the boundary (Scope 1) and have a ``fuel.<carrier>`` factor.
FUEL_CARRIERS = frozenset({Carrier.NATURAL_GAS, Carrier.DIESEL, Carrier.GASOLINE, Carrier.LPG})

HEAT_FACTOR_ID = "heat.purchased"

NATIONAL = "national"

#: The 31 provincial-level divisions of mainland China, lowercase pinyin as used in the
#: registry's ``province`` field. A known province without its own factor falls back to the
#: national factor; an unknown name is an error (a typo must not silently become "national").
PROVINCES = frozenset(
    {
        "anhui", "beijing", "chongqing", "fujian", "gansu", "guangdong", "guangxi", "guizhou",
        "hainan", "hebei", "heilongjiang", "henan", "hubei", "hunan", "jiangsu", "jiangxi",
        "jilin", "liaoning", "neimenggu", "ningxia", "qinghai", "shaanxi", "shandong",
        "shanghai", "shanxi", "sichuan", "tianjin", "xinjiang", "xizang", "yunnan", "zhejiang",
    }
)  # fmt: skip

_REGION_ALIASES: Mapping[str, str] = {
    "inner_mongolia": "neimenggu",
    "nei_mongol": "neimenggu",
    "tibet": "xizang",
    "china": NATIONAL,
}

#: Canonical factor units [kgCO2 per canonical unit] and the spellings accepted in records,
#: with the multiplier that converts a value in that spelling to the canonical unit.
UNIT_SPELLINGS: Mapping[str, Mapping[str, float]] = {
    "kgCO2/kWh": {"kgCO2/kWh": 1.0, "tCO2/MWh": 1.0, "gCO2/kWh": 0.001},
    "kgCO2/m3": {"kgCO2/m3": 1.0, "kgCO2/Nm3": 1.0, "tCO2/10^4Nm3": 0.1, "tCO2/10^4m3": 0.1},
    "kgCO2/GJ": {"kgCO2/GJ": 1.0, "tCO2/GJ": 1000.0, "kgCO2/MJ": 1000.0},
    "kgCO2/kg": {"kgCO2/kg": 1.0, "tCO2/t": 1.0},
}

_FUEL_UNIT: Mapping[Carrier, str] = {c: f"kgCO2/{CANONICAL_UNIT[c]}" for c in FUEL_CARRIERS}

_REGION_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_ID_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")

#: Molar mass ratio CO2 / C [-].
CO2_PER_C = 44.0 / 12.0


def normalise_region(region: str) -> str:
    """Lowercase, trimmed region name with the few English aliases resolved.

    ``"Sichuan"`` -> ``"sichuan"``, ``"Inner_Mongolia"`` -> ``"neimenggu"``.
    """
    r = region.strip().lower().replace(" ", "_").replace("-", "_")
    return _REGION_ALIASES.get(r, r)


def grid_factor_id(kind: str, region: str) -> str:
    """Factor id of the grid series of ``kind`` for ``region``: ``grid.avg.sichuan``."""
    try:
        prefix = GRID_KIND_PREFIX[kind]
    except KeyError:
        raise FactorError(
            f"grid factor kind {kind!r} is unknown; accepted: {', '.join(sorted(GRID_KIND_PREFIX))}"
        ) from None
    return f"{prefix}.{normalise_region(region)}"


def fuel_factor_id(carrier: Carrier) -> str:
    """Factor id of a fuel: ``fuel.natural_gas``."""
    if carrier not in FUEL_CARRIERS:
        accepted = ", ".join(sorted(c.value for c in FUEL_CARRIERS))
        raise FactorError(f"carrier {carrier.value!r} is not a fuel; fuels: {accepted}")
    return f"fuel.{carrier.value}"


# --------------------------------------------------------------------------------------------
# Fuel parameters -> fuel factor
# --------------------------------------------------------------------------------------------

#: LHV units accepted by :class:`FuelParameters` and the multiplier to GJ per canonical unit
#: (per m3 for gas, per kg for liquid fuels).
LHV_UNITS: Mapping[str, tuple[str, float]] = {
    "GJ/10^4Nm3": ("m3", 1.0e-4),
    "GJ/t": ("kg", 1.0e-3),
}


@dataclass(frozen=True)
class FuelParameters:
    """Default combustion parameters of a fuel, from which its emission factor derives.

    ``lhv`` is the low (net) heating value in ``lhv_unit`` (``"GJ/10^4Nm3"`` for gas,
    ``"GJ/t"`` for liquid fuels); ``carbon_content_tc_per_tj`` the carbon content per unit heat
    [tC/TJ] (numerically kgC/GJ); ``oxidation_fraction`` the share of carbon oxidised [-], in
    (0, 1].
    """

    lhv: float
    lhv_unit: str
    carbon_content_tc_per_tj: float
    oxidation_fraction: float
    source: str

    def __post_init__(self) -> None:
        if self.lhv_unit not in LHV_UNITS:
            raise FactorError(
                f"fuel parameters: lhv_unit {self.lhv_unit!r} is unknown; "
                f"accepted: {', '.join(LHV_UNITS)}"
            )
        for name in ("lhv", "carbon_content_tc_per_tj"):
            v = getattr(self, name)
            if not _is_number(v) or not math.isfinite(v) or v <= 0:
                raise FactorError(f"fuel parameters: {name} must be a number > 0, got {v!r}")
        ox = self.oxidation_fraction
        if not _is_number(ox) or not 0 < ox <= 1:
            raise FactorError(
                f"fuel parameters: oxidation_fraction must be in (0, 1] (e.g. 0.99 for 99 %), "
                f"got {ox!r}"
            )
        if not self.source.strip():
            raise FactorError("fuel parameters: source must name the document")

    @property
    def canonical_unit(self) -> str:
        """Canonical quantity unit the parameters apply to: ``"m3"`` or ``"kg"``."""
        return LHV_UNITS[self.lhv_unit][0]

    @property
    def factor_unit(self) -> str:
        """Unit of :func:`fuel_factor_kgco2_per_unit`: ``"kgCO2/m3"`` or ``"kgCO2/kg"``."""
        return f"kgCO2/{self.canonical_unit}"


def fuel_factor_kgco2_per_unit(params: FuelParameters) -> float:
    """CO2 emission factor of a fuel [kgCO2/m3 for gas, kgCO2/kg for liquid fuels].

    Fuel combustion method of GB/T 32150-2015 (*General guideline of greenhouse gas emissions
    accounting and reporting for industrial enterprises*), section 6 and Appendix B, identical in
    the MEE/NDRC enterprise accounting guidelines::

        EF = NCV x CC x OF x 44/12

    with NCV the low heating value [GJ per canonical unit], CC the carbon content per unit heat
    [tC/TJ = kgC/GJ], OF the oxidation fraction [-] and 44/12 the CO2/C molar mass ratio.

    Example (natural gas, defaults): 389.31 GJ/10^4 Nm3 = 0.038931 GJ/m3;
    0.038931 x 15.3 x 0.99 x 44/12 = 2.1622 kgCO2/m3.
    """
    _, to_gj_per_unit = LHV_UNITS[params.lhv_unit]
    ncv_gj_per_unit = params.lhv * to_gj_per_unit
    carbon_kgc_per_gj = params.carbon_content_tc_per_tj  # 1 tC/TJ = 1000 kgC / 1000 GJ
    return ncv_gj_per_unit * carbon_kgc_per_gj * params.oxidation_fraction * CO2_PER_C


# --------------------------------------------------------------------------------------------
# The factor
# --------------------------------------------------------------------------------------------

#: Published factors are rounded (2.162 for 2.1622); a stated value must agree with the value
#: derived from its fuel parameters within this relative tolerance.
FUEL_PARAMETER_TOLERANCE = 0.005


@dataclass(frozen=True)
class EmissionFactor:
    """One published emission factor [kgCO2 per canonical unit].

    * ``factor_id``: the series (``grid.avg.sichuan``); ``version``: this publication
      (``mee-2024-33``); together unique.
    * ``value`` [``unit``]; ``unit`` is one of ``kgCO2/kWh``, ``kgCO2/m3``, ``kgCO2/GJ``,
      ``kgCO2/kg``.
    * ``kind``: ``grid_average``, ``grid_excl_market``, ``grid_fossil``, ``fuel``, ``heat``.
    * ``region``: ``national`` or a lowercase province name.
    * ``data_year``: the year the factor describes (grid factors are published about two years
      later); ``None`` for factors not tied to a year (fuel default parameters).
    * ``effective_from`` / ``effective_to`` (inclusive): optional window of accounting dates the
      factor may be used for; ``None`` is open.
    * ``source``: document and number. ``check``: a default DOMAIN.md flags "check", which a
      deployment must confirm or override. ``fuel_parameters``: for fuels, what it derives from.
    """

    factor_id: str
    version: str
    value: float
    unit: str
    kind: str
    region: str
    data_year: int | None
    source: str
    effective_from: date | None = None
    effective_to: date | None = None
    check: bool = False
    fuel_parameters: FuelParameters | None = None
    note: str = ""

    def __post_init__(self) -> None:
        where = f"factor {self.factor_id!r} version {self.version!r}"
        if not isinstance(self.factor_id, str) or not _ID_RE.match(self.factor_id):
            raise FactorError(
                f"factor id {self.factor_id!r} must be dot-separated lowercase words "
                "(e.g. 'grid.avg.sichuan')"
            )
        if not isinstance(self.version, str) or not self.version.strip():
            raise FactorError(f"{where}: version must be a non-empty string")
        if not _is_number(self.value) or not math.isfinite(self.value) or self.value < 0:
            raise FactorError(f"{where}: value must be a finite number >= 0, got {self.value!r}")
        if self.unit not in UNIT_SPELLINGS:
            raise FactorError(
                f"{where}: unit {self.unit!r} is not canonical; accepted: "
                f"{', '.join(UNIT_SPELLINGS)}"
            )
        if self.kind not in KINDS:
            raise FactorError(
                f"{where}: kind {self.kind!r} is unknown; accepted: {', '.join(sorted(KINDS))}"
            )
        expected_units = _units_for_kind(self.kind)
        if self.unit not in expected_units:
            raise FactorError(
                f"{where}: unit {self.unit!r} does not fit kind {self.kind!r}; "
                f"accepted: {', '.join(expected_units)}"
            )
        if not isinstance(self.region, str) or not _REGION_RE.match(self.region):
            raise FactorError(
                f"{where}: region {self.region!r} must be 'national' or a lowercase province "
                "name such as 'sichuan'"
            )
        if self.data_year is not None and (
            not isinstance(self.data_year, int)
            or isinstance(self.data_year, bool)
            or not 1990 <= self.data_year <= 2100
        ):
            raise FactorError(
                f"{where}: data_year must be a year between 1990 and 2100 or None, "
                f"got {self.data_year!r}"
            )
        if (
            self.effective_from is not None
            and self.effective_to is not None
            and self.effective_from > self.effective_to
        ):
            raise FactorError(
                f"{where}: effective_from {self.effective_from} is after "
                f"effective_to {self.effective_to}"
            )
        if not isinstance(self.source, str) or not self.source.strip():
            raise FactorError(f"{where}: source must name the document (e.g. 'MEE notice ...')")
        self._check_id_convention(where)
        if self.fuel_parameters is not None:
            self._check_fuel_parameters(where, self.fuel_parameters)

    def _check_id_convention(self, where: str) -> None:
        parts = self.factor_id.split(".")
        if parts[0] == "grid" and len(parts) == 3:
            for kind, prefix in GRID_KIND_PREFIX.items():
                if self.factor_id.startswith(prefix + "."):
                    if (kind, parts[2]) != (self.kind, self.region):
                        raise FactorError(
                            f"{where}: id says kind {kind!r} region {parts[2]!r} but the factor "
                            f"has kind {self.kind!r} region {self.region!r}"
                        )
                    return
        if parts[0] == "fuel" and len(parts) == 2:
            try:
                carrier = Carrier(parts[1])
            except ValueError:
                carrier = None
            if carrier not in FUEL_CARRIERS or self.kind != "fuel":
                raise FactorError(
                    f"{where}: ids 'fuel.<carrier>' are for kind 'fuel' and carriers "
                    f"{', '.join(sorted(c.value for c in FUEL_CARRIERS))}"
                )
            assert carrier is not None
            if self.unit != _FUEL_UNIT[carrier]:
                raise FactorError(
                    f"{where}: unit {self.unit!r} does not measure {carrier.value}; "
                    f"expected {_FUEL_UNIT[carrier]!r}"
                )
        if self.factor_id == HEAT_FACTOR_ID and self.kind != "heat":
            raise FactorError(f"{where}: id {HEAT_FACTOR_ID!r} is for kind 'heat'")

    def _check_fuel_parameters(self, where: str, params: FuelParameters) -> None:
        if self.kind != "fuel":
            raise FactorError(f"{where}: fuel_parameters only apply to kind 'fuel'")
        if params.factor_unit != self.unit:
            raise FactorError(
                f"{where}: fuel parameters give {params.factor_unit!r} but unit is {self.unit!r}"
            )
        derived = fuel_factor_kgco2_per_unit(params)
        if abs(self.value - derived) > FUEL_PARAMETER_TOLERANCE * derived:
            raise FactorError(
                f"{where}: value {self.value} {self.unit} disagrees with {derived:.4f} derived "
                f"from its fuel parameters (tolerance {FUEL_PARAMETER_TOLERANCE:.1%})"
            )

    def applies_in(self, accounting_year: int) -> bool:
        """Whether the effective window overlaps calendar ``accounting_year``."""
        return (
            self.effective_from is None or self.effective_from <= date(accounting_year, 12, 31)
        ) and (self.effective_to is None or self.effective_to >= date(accounting_year, 1, 1))

    def describe(self) -> str:
        """``grid.avg.sichuan@mee-2025-47 = 0.1564 kgCO2/kWh (data year 2023)``."""
        year = f" (data year {self.data_year})" if self.data_year is not None else ""
        return f"{self.factor_id}@{self.version} = {self.value:g} {self.unit}{year}"


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _describe_version(f: EmissionFactor) -> str:
    parts = [f"data year {f.data_year}" if f.data_year is not None else "no data year"]
    if f.effective_from is not None or f.effective_to is not None:
        parts.append(f"effective {f.effective_from or '...'} to {f.effective_to or '...'}")
    return f"{f.version} ({', '.join(parts)})"


def _units_for_kind(kind: str) -> tuple[str, ...]:
    if kind in GRID_KIND_PREFIX:
        return ("kgCO2/kWh",)
    if kind == "heat":
        return ("kgCO2/GJ",)
    return ("kgCO2/m3", "kgCO2/kg")


# --------------------------------------------------------------------------------------------
# Default tables (DOMAIN.md section 3)
# --------------------------------------------------------------------------------------------

_GB32150 = "GB/T 32150-2015 Appendix B default parameters (= MEE/NDRC accounting guidelines)"

#: Default fuel parameters: GB/T 32150-2015 Table B.1.
FUEL_PARAMETERS: Mapping[Carrier, FuelParameters] = {
    Carrier.NATURAL_GAS: FuelParameters(
        lhv=389.31, lhv_unit="GJ/10^4Nm3", carbon_content_tc_per_tj=15.3,
        oxidation_fraction=0.99, source=_GB32150,
    ),
    Carrier.GASOLINE: FuelParameters(
        lhv=43.070, lhv_unit="GJ/t", carbon_content_tc_per_tj=18.9,
        oxidation_fraction=0.98, source=_GB32150,
    ),
    Carrier.DIESEL: FuelParameters(
        lhv=42.652, lhv_unit="GJ/t", carbon_content_tc_per_tj=20.2,
        oxidation_fraction=0.98, source=_GB32150,
    ),
    Carrier.LPG: FuelParameters(
        lhv=50.179, lhv_unit="GJ/t", carbon_content_tc_per_tj=17.2,
        oxidation_fraction=0.98, source=_GB32150,
    ),
}  # fmt: skip

FUEL_VERSION = "gbt32150-2015"


def _fuel_defaults() -> list[EmissionFactor]:
    out = []
    for carrier, params in FUEL_PARAMETERS.items():
        out.append(
            EmissionFactor(
                factor_id=fuel_factor_id(carrier),
                version=FUEL_VERSION,
                value=fuel_factor_kgco2_per_unit(params),  # derived, not typed in
                unit=params.factor_unit,
                kind="fuel",
                region=NATIONAL,
                data_year=None,
                source=params.source,
                fuel_parameters=params,
                note="NCV x CC x OF x 44/12; gas volumes in Nm3 (0 degC, 101.325 kPa)"
                if carrier is Carrier.NATURAL_GAS
                else "NCV x CC x OF x 44/12",
            )
        )
    return out


#: Grid announcements: data year -> (version, source).
GRID_ANNOUNCEMENTS: Mapping[int, tuple[str, str]] = {
    2021: (
        "mee-2024-12",
        "MEE/NBS announcement 2024 No. 12: 2021 electricity CO2 emission factors",
    ),
    2022: (
        "mee-2024-33",
        "MEE/NBS announcement 2024 No. 33: 2022 electricity CO2 emission factors",
    ),
    2023: (
        "mee-2025-47",
        "MEE/NBS announcement 2025 No. 47: 2023 electricity CO2 emission factors",
    ),
}

#: Data years of :data:`GRID_TABLE`'s columns.
GRID_DATA_YEARS: tuple[int, ...] = (2021, 2022, 2023)

#: Default grid table [kgCO2/kWh], DOMAIN.md section 3: (kind, region) -> one value per year of
#: :data:`GRID_DATA_YEARS`.
GRID_TABLE: Mapping[tuple[str, str], tuple[float, ...]] = {
    ("grid_average", NATIONAL):     (0.5568, 0.5366, 0.5306),
    ("grid_excl_market", NATIONAL): (0.5942, 0.5856, 0.6096),
    ("grid_fossil", NATIONAL):      (0.8426, 0.8325, 0.8273),
    ("grid_average", "sichuan"):    (0.1255, 0.1404, 0.1564),
    ("grid_average", "guangxi"):    (0.5154, 0.4044, 0.4476),
    ("grid_average", "guangdong"):  (0.4715, 0.4403, 0.4419),
}  # fmt: skip

#: (kind, region, data year) of the grid figures DOMAIN.md flags "check".
GRID_CHECK: frozenset[tuple[str, str, int]] = frozenset(
    {
        ("grid_average", "sichuan", 2021),
        ("grid_average", "guangxi", 2021),
        ("grid_average", "guangxi", 2023),
        ("grid_average", "guangdong", 2021),
    }
)

#: Id of the historical national factor of the MEE power-sector reporting notice (2023).
HISTORICAL_NATIONAL_ID = "grid.avg.national.power_sector_2023"


def _grid_defaults() -> list[EmissionFactor]:
    out = []
    for (kind, region), values in GRID_TABLE.items():
        for year, value in zip(GRID_DATA_YEARS, values, strict=True):
            version, source = GRID_ANNOUNCEMENTS[year]
            check = (kind, region, year) in GRID_CHECK
            out.append(
                EmissionFactor(
                    factor_id=grid_factor_id(kind, region),
                    version=version,
                    value=value,
                    unit="kgCO2/kWh",
                    kind=kind,
                    region=region,
                    data_year=year,
                    source=source,
                    check=check,
                    note="DOMAIN.md flags this figure 'check'" if check else "",
                )
            )
    out.append(
        EmissionFactor(
            factor_id=HISTORICAL_NATIONAL_ID,
            version="mee-2023",
            value=0.5703,
            unit="kgCO2/kWh",
            kind="grid_average",
            region=NATIONAL,
            data_year=None,
            source="MEE notice on power-sector GHG emission reporting (2023), national grid "
            "average emission factor",
            check=True,
            note="historical: older guidance; never chosen by the year rule, only when named",
        )
    )
    return out


#: Purchased heat / steam [kgCO2/GJ] = 0.11 tCO2/GJ (check).
HEAT_DEFAULT = EmissionFactor(
    factor_id=HEAT_FACTOR_ID,
    version="mee-guidelines-default",
    value=0.11 * 1000.0,  # 0.11 tCO2/GJ -> kgCO2/GJ
    unit="kgCO2/GJ",
    kind="heat",
    region=NATIONAL,
    data_year=None,
    source="MEE/NDRC enterprise GHG accounting guidelines, default factor for purchased heat "
    "0.11 tCO2/GJ",
    check=True,
    note="common default; replace with the heat supplier's factor where known",
)


def default_factors() -> tuple[EmissionFactor, ...]:
    """Every default factor of DOMAIN.md section 3: grid (2021-2023 and the historical 0.5703),
    fuels and purchased heat."""
    return (*_grid_defaults(), *_fuel_defaults(), HEAT_DEFAULT)


# --------------------------------------------------------------------------------------------
# Records (parsed YAML) -> factors
# --------------------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(
    {
        "factor_id", "version", "value", "unit", "kind", "region", "data_year", "source",
        "effective_from", "effective_to", "check", "fuel_parameters", "note",
    }
)  # fmt: skip
_FUEL_FIELDS = frozenset(
    {"lhv", "lhv_unit", "carbon_content_tc_per_tj", "oxidation_fraction", "source"}
)


def factor_from_record(record: Mapping[str, Any], where: str = "factor record") -> EmissionFactor:
    """Build one :class:`EmissionFactor` from a mapping (one entry of a YAML factor file).

    Fields: ``factor_id``, ``version`` (a YAML number such as ``2024`` is taken as the string
    ``"2024"``), ``value`` (may be omitted for a fuel with ``fuel_parameters``: it is then
    derived), ``unit`` (canonical or an equivalent spelling such as ``tCO2/MWh``, ``tCO2/t``,
    ``tCO2/GJ``; the value is converted to the canonical unit), ``kind``, ``region`` (default
    ``national``), ``data_year`` (default none), ``source`` (required), ``effective_from`` /
    ``effective_to`` (date or ISO ``YYYY-MM-DD``), ``check`` (default false), ``note``,
    ``fuel_parameters`` (``lhv``, ``lhv_unit``, ``carbon_content_tc_per_tj``,
    ``oxidation_fraction``, ``source``). Errors start with ``where``.
    """
    if not isinstance(record, Mapping):
        raise FactorError(f"{where}: must be a mapping, got {type(record).__name__}")
    unknown = sorted(set(record) - _RECORD_FIELDS, key=str)
    if unknown:
        raise FactorError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(sorted(_RECORD_FIELDS))}"
        )
    factor_id = _field(record, "factor_id", where, str)
    where = f"{where} ({factor_id!r})"
    raw_version = _field(record, "version", where, (str, int))
    params = None
    if record.get("fuel_parameters") is not None:
        params = _fuel_parameters(record["fuel_parameters"], f"{where}: field 'fuel_parameters'")
    raw_unit: str
    if "value" in record or params is None:
        value = float(_field(record, "value", where, (int, float)))
        raw_unit = _field(record, "unit", where, str)
    else:
        value = fuel_factor_kgco2_per_unit(params)
        raw_unit = record.get("unit", params.factor_unit)
    unit, to_canonical = _canonical_unit(raw_unit, where)
    data_year = record.get("data_year")
    if data_year is not None:
        data_year = _field(record, "data_year", where, int)
    region = record.get("region", NATIONAL)
    if not isinstance(region, str):
        raise FactorError(f"{where}: field 'region' must be a string, got {region!r}")
    check = record.get("check", False)
    if not isinstance(check, bool):
        raise FactorError(f"{where}: field 'check' must be true or false, got {check!r}")
    note = record.get("note", "")
    try:
        return EmissionFactor(
            factor_id=factor_id,
            version=str(raw_version),
            value=value * to_canonical,
            unit=unit,
            kind=_field(record, "kind", where, str),
            region=normalise_region(region),
            data_year=data_year,
            source=_field(record, "source", where, str),
            effective_from=_date(record, "effective_from", where),
            effective_to=_date(record, "effective_to", where),
            check=check,
            fuel_parameters=params,
            note=str(note),
        )
    except FactorError as exc:
        raise FactorError(f"{where}: {exc}") from None


def _field(record: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in record or record[key] is None:
        raise FactorError(f"{where}: field {key!r} is required")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = " or ".join(
            dict.fromkeys("number" if k in (int, float) else k.__name__ for k in kinds)
        )
        raise FactorError(f"{where}: field {key!r} must be {names}, got {value!r}")
    return value


def _canonical_unit(raw: str, where: str) -> tuple[str, float]:
    for canonical, spellings in UNIT_SPELLINGS.items():
        if raw in spellings:
            return canonical, spellings[raw]
    accepted = ", ".join(s for spellings in UNIT_SPELLINGS.values() for s in spellings)
    raise FactorError(f"{where}: field 'unit' is {raw!r}; accepted: {accepted}")


def _date(record: Mapping[str, Any], key: str, where: str) -> date | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise FactorError(f"{where}: field {key!r} must be a date YYYY-MM-DD, got {value!r}")


def _fuel_parameters(raw: Any, where: str) -> FuelParameters:
    if not isinstance(raw, Mapping):
        raise FactorError(f"{where}: must be a mapping")
    unknown = sorted(set(raw) - _FUEL_FIELDS, key=str)
    if unknown:
        raise FactorError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(sorted(_FUEL_FIELDS))}"
        )
    try:
        return FuelParameters(
            lhv=float(_field(raw, "lhv", where, (int, float))),
            lhv_unit=_field(raw, "lhv_unit", where, str),
            carbon_content_tc_per_tj=float(
                _field(raw, "carbon_content_tc_per_tj", where, (int, float))
            ),
            oxidation_fraction=float(_field(raw, "oxidation_fraction", where, (int, float))),
            source=_field(raw, "source", where, str),
        )
    except FactorError as exc:
        msg = str(exc)
        raise FactorError(msg if msg.startswith(where) else f"{where}: {msg}") from None


# --------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------

_OVERRIDE_REF_KEYS = frozenset({"factor_id", "version", "data_year"})


class FactorLibrary:
    """The defaults plus user-supplied factors, and the rules that select one.

    A user-supplied factor with the same ``(factor_id, version)`` as a default replaces it; any
    other user factor is added. Two user factors with the same ``(factor_id, version)`` are an
    error.

    **Selection rule** (:meth:`grid_factor`, :meth:`fuel_factor`, :meth:`heat_factor`): among the
    factors of the series whose effective window overlaps the accounting year,

    1. with ``data_year`` given: exactly that data year (used for restatements, and to use a
       factor published for a later year on purpose);
    2. otherwise the newest data year ``<= accounting_year`` (published about two years late,
       so accounting year 2025 gets data year 2023); factors without a data year rank below
       every dated one;
    3. ties: a user-supplied factor beats a default, a later effective_from beats an earlier
       one, and a later-supplied factor beats an earlier one.

    An accounting year older than every published data year is an error (the rule never uses a
    future year's factor silently): pass ``data_year`` explicitly, e.g. ``data_year=2021`` for
    a 2020 baseline, and record that choice.
    """

    def __init__(
        self, factors: Iterable[EmissionFactor] = (), *, include_defaults: bool = True
    ) -> None:
        by_key: dict[tuple[str, str], EmissionFactor] = {}
        user_keys: dict[tuple[str, str], int] = {}
        if include_defaults:
            for f in default_factors():
                by_key[(f.factor_id, f.version)] = f
        for i, f in enumerate(factors):
            if not isinstance(f, EmissionFactor):
                raise FactorError(f"factors[{i}]: must be an EmissionFactor, got {f!r}")
            key = (f.factor_id, f.version)
            if key in user_keys:
                raise FactorError(
                    f"factors[{i}]: factor {f.factor_id!r} version {f.version!r} is supplied "
                    f"twice (also factors[{user_keys[key]}])"
                )
            user_keys[key] = i
            by_key.pop(key, None)  # keep insertion order: a replacement counts as supplied now
            by_key[key] = f
        self._factors: dict[tuple[str, str], EmissionFactor] = by_key
        self._order = {key: n for n, key in enumerate(by_key)}
        self._user = frozenset(user_keys)
        self._series: dict[str, list[EmissionFactor]] = {}
        for f in by_key.values():
            self._series.setdefault(f.factor_id, []).append(f)
        self._cache: dict[tuple[str, int | None, int | None], EmissionFactor] = {}

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        include_defaults: bool = True,
        source: str = "factors",
    ) -> FactorLibrary:
        """Library from parsed records (see :func:`factor_from_record`).

        Errors name ``source``, the record index and the field: ``factors[2] ('grid.avg.sichuan'):
        field 'value' must be number, got 'x'``.
        """
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise FactorError(f"{source}: must be a list of factor records")
        factors = [factor_from_record(r, where=f"{source}[{i}]") for i, r in enumerate(records)]
        try:
            return cls(factors, include_defaults=include_defaults)
        except FactorError as exc:
            raise FactorError(f"{source}: {exc}") from None

    # -- inspection ---------------------------------------------------------------------------

    @property
    def factors(self) -> tuple[EmissionFactor, ...]:
        """Every factor in the library."""
        return tuple(self._factors.values())

    def is_user_supplied(self, factor: EmissionFactor) -> bool:
        """Whether ``factor`` came from the deployment rather than the defaults."""
        return (factor.factor_id, factor.version) in self._user

    def flagged(self) -> tuple[EmissionFactor, ...]:
        """Factors flagged ``check`` (a default replaced under its own id and version is gone)."""
        return tuple(f for f in self._factors.values() if f.check)

    def versions(self, factor_id: str) -> tuple[EmissionFactor, ...]:
        """Every version of a series, oldest data year first."""
        return tuple(sorted(self._series.get(factor_id, ()), key=self._rank))

    def get(self, factor_id: str, version: str) -> EmissionFactor:
        """The factor with this id and version (e.g. to recompute a stored figure)."""
        try:
            return self._factors[(factor_id, version)]
        except KeyError:
            pass
        series = self._series.get(factor_id)
        if not series:
            raise FactorError(
                f"no factor {factor_id!r}; known ids: {', '.join(sorted(self._series))}"
            )
        versions = ", ".join(f.version for f in self.versions(factor_id))
        raise FactorError(f"factor {factor_id!r} has no version {version!r}; versions: {versions}")

    # -- selection ----------------------------------------------------------------------------

    def grid_factor(
        self,
        region: str,
        accounting_year: int,
        kind: str = "grid_average",
        data_year: int | None = None,
        override: Mapping[str, Any] | None = None,
    ) -> EmissionFactor:
        """Grid electricity factor [kgCO2/kWh] for ``region`` and ``accounting_year``.

        Uses the series ``grid_factor_id(kind, region)``; when that province has no factor of
        ``kind`` (e.g. only national ``grid_excl_market`` factors are published), the national
        series is used: the returned factor's ``factor_id``/``region`` say which one.

        ``override`` (e.g. a site's configuration) replaces the rule:

        * ``{"factor_id": ..., "version": ...}``: exactly that factor;
        * ``{"factor_id": ...}`` and/or ``{"data_year": ...}``: the selection rule on that
          series and/or data year;
        * a full factor record (has ``value``; see :func:`factor_from_record`): that factor,
          which must be of ``kind``.

        Raises :class:`FactorError` naming region, year and what is available.
        """
        kind_prefix = GRID_KIND_PREFIX.get(kind)
        if kind_prefix is None:
            raise FactorError(
                f"grid factor kind {kind!r} is unknown; accepted: "
                f"{', '.join(sorted(GRID_KIND_PREFIX))}"
            )
        if override:
            return self._grid_override(override, region, accounting_year, kind, data_year)
        reg = normalise_region(region)
        factor_id = grid_factor_id(kind, reg)
        if factor_id not in self._series:
            if reg != NATIONAL and reg not in PROVINCES and not self._has_region(reg):
                raise FactorError(
                    f"region {region!r} is not a known province; accepted: 'national', "
                    f"{', '.join(sorted(PROVINCES))}"
                )
            factor_id = grid_factor_id(kind, NATIONAL)
        return self._select(factor_id, accounting_year, data_year, what=f"region {region!r}")

    def fuel_factor(self, carrier: Carrier, accounting_year: int | None = None) -> EmissionFactor:
        """Fuel factor [kgCO2/m3 for natural gas, kgCO2/kg for diesel, gasoline, LPG].

        Without ``accounting_year`` every version qualifies (the newest data year wins, then a
        user-supplied one); with it the :class:`FactorLibrary` selection rule applies.
        """
        return self._select(fuel_factor_id(carrier), accounting_year, None, what=carrier.value)

    def heat_factor(self, accounting_year: int | None = None) -> EmissionFactor:
        """Purchased heat / steam factor [kgCO2/GJ] (default 110 = 0.11 tCO2/GJ, check)."""
        return self._select(HEAT_FACTOR_ID, accounting_year, None, what="purchased heat")

    # -- internals ----------------------------------------------------------------------------

    def _has_region(self, region: str) -> bool:
        return any(f.region == region for f in self._factors.values())

    def _rank(self, f: EmissionFactor) -> tuple[int, bool, date, int]:
        key = (f.factor_id, f.version)
        return (
            f.data_year if f.data_year is not None else -1,
            key in self._user,
            f.effective_from or date.min,
            self._order[key],
        )

    def _select(
        self, factor_id: str, accounting_year: int | None, data_year: int | None, what: str
    ) -> EmissionFactor:
        cache_key = (factor_id, accounting_year, data_year)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        series = self._series.get(factor_id, [])
        if not series:
            raise FactorError(
                f"{what}: no factor {factor_id!r}; known ids: {', '.join(sorted(self._series))}"
            )
        candidates = series
        if accounting_year is not None:
            candidates = [f for f in candidates if f.applies_in(accounting_year)]
        if data_year is not None:
            candidates = [f for f in candidates if f.data_year == data_year]
        elif accounting_year is not None:
            candidates = [
                f for f in candidates if f.data_year is None or f.data_year <= accounting_year
            ]
        if not candidates:
            years = sorted({f.data_year for f in series if f.data_year is not None})
            available = ", ".join(_describe_version(f) for f in sorted(series, key=self._rank))
            wanted = (
                f"data year {data_year}"
                if data_year is not None
                else f"a data year <= {accounting_year}"
            )
            hint = ""
            if (
                data_year is None
                and accounting_year is not None
                and years
                and accounting_year < years[0]
            ):
                hint = (
                    f"; accounting year {accounting_year} precedes the oldest published data "
                    f"year {years[0]}: pass data_year explicitly to use a later factor"
                )
            raise FactorError(
                f"{what}, accounting year {accounting_year}: {factor_id!r} has no factor for "
                f"{wanted}; available: {available}{hint}"
            )
        chosen = max(candidates, key=self._rank)
        self._cache[cache_key] = chosen
        return chosen

    def _grid_override(
        self,
        override: Mapping[str, Any],
        region: str,
        accounting_year: int,
        kind: str,
        data_year: int | None,
    ) -> EmissionFactor:
        where = f"grid factor override for region {region!r}"
        if "value" in override:
            factor = factor_from_record(override, where=where)
        else:
            unknown = sorted(set(override) - _OVERRIDE_REF_KEYS, key=str)
            if unknown:
                raise FactorError(
                    f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; accepted: "
                    f"{', '.join(sorted(_OVERRIDE_REF_KEYS))}, or a full factor record with "
                    "'value'"
                )
            factor_id = override.get("factor_id")
            if factor_id is not None and not isinstance(factor_id, str):
                raise FactorError(f"{where}: 'factor_id' must be a string, got {factor_id!r}")
            year = override.get("data_year", data_year)
            if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
                raise FactorError(f"{where}: 'data_year' must be a year, got {year!r}")
            if override.get("version") is not None:
                if factor_id is None:
                    raise FactorError(f"{where}: 'version' needs 'factor_id'")
                factor = self.get(factor_id, str(override["version"]))
            elif factor_id is not None:
                factor = self._select(factor_id, accounting_year, year, what=where)
            else:
                factor = self.grid_factor(region, accounting_year, kind, data_year=year)
        if factor.kind != kind:
            raise FactorError(
                f"{where}: factor {factor.factor_id!r} is of kind {factor.kind!r}, "
                f"requested {kind!r}"
            )
        return factor
