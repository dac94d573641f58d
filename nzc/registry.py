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
    """Read and validate the registry YAML at ``path``; a directory means every ``*.yaml``
    in it, merged (a site, meter or instrument id may appear in one file only)."""
    if path.is_dir():
        parts = [_load_file(p) for p in sorted(path.glob("*.yaml"))]
        if not parts:
            raise RegistryError(f"{path}: no *.yaml registry files in this directory")
        return merge_registries(parts, str(path))
    return _load_file(path)


def registry_text(path: Path) -> str:
    """The registry's text as stored in the database history (files joined for a directory)."""
    if path.is_dir():
        return "\n---\n".join(f"# file: {p.name}\n{p.read_text(encoding='utf-8')}"
                              for p in sorted(path.glob("*.yaml")))
    return path.read_text(encoding="utf-8")


def parse_registry_text(text: str, source: str) -> Registry:
    """Parse stored registry text: one YAML document, or several (a directory) merged."""
    docs = [d for d in yaml.load_all(text, Loader=_LineLoader) if d is not None]
    parts = [parse_registry(d, source=source) for d in docs]
    return parts[0] if len(parts) == 1 else merge_registries(parts, source)


def merge_registries(parts: list[Registry], source: str) -> Registry:
    """One registry from several; duplicate ids are an error naming the id."""
    sites: dict[str, Any] = {}
    meters: dict[str, Any] = {}
    instruments: dict[str, Any] = {}
    for reg in parts:
        for kind, into, items in (("site", sites, reg.sites), ("meter", meters, reg.meters),
                                  ("instrument", instruments,
                                   {i.instrument_id: i for i in reg.instruments})):
            for key, value in items.items():
                if key in into:
                    raise RegistryError(f"{source}: {kind} {key!r} is declared in two files")
                into[key] = value
    return Registry(sites=sites, meters=meters,
                    denominators=tuple(d for r in parts for d in r.denominators),
                    instruments=tuple(instruments.values()))


def _load_file(path: Path) -> Registry:
    """Read and validate one registry YAML file."""
    try:
        doc = load_registry_document(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    return parse_registry(doc, source=str(path))
