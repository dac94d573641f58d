"""Load the pilot registry from its YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from carbon.registry import LINE_KEY, Registry, RegistryError, parse_registry


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records each mapping's line number under ``__line__`` so that
    registry errors can name the line."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE_KEY] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_registry_document(text: str) -> Any:
    """Parse registry YAML text, recording line numbers."""
    return yaml.load(text, Loader=_LineLoader)


def load_registry(path: Path) -> Registry:
    """Read and validate the registry YAML at ``path``."""
    try:
        doc = load_registry_document(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    return parse_registry(doc, source=str(path))
