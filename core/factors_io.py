"""Load the factor library: the shipped defaults plus a deployment's own factors file."""

from __future__ import annotations

from pathlib import Path

import yaml

from carbon.factors import FactorLibrary


def load_factor_library(path: Path | None) -> FactorLibrary:
    """Defaults, plus the records of the YAML list at ``path`` (``NZC_FACTORS``) when given:
    a provincial update or a newer MEE notice needs no code change."""
    if path is None:
        return FactorLibrary()
    records = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if isinstance(records, dict):
        records = records.get("factors", [])
    return FactorLibrary.from_records(records, source=str(path))
