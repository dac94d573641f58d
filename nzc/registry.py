"""Load the pilot registry from its YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

from carbon.registry import Registry, RegistryError, parse_registry


def load_registry(path: Path) -> Registry:
    """Read and validate the registry YAML at ``path``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    return parse_registry(doc, source=str(path))
