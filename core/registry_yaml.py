"""Load the pilot registry from its YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from carbon.registry import LINE_KEY, Registry, RegistryError, parse_registry

#: Deepest nesting of YAML collections accepted: a registry needs about six levels.
MAX_DEPTH = 40


class _Refused(yaml.MarkedYAMLError):
    """A registry document the loader refuses (aliases, duplicate keys, too deep, a value
    that cannot be built); carries the YAML position."""


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records each mapping's line number under ``__line__`` so that
    registry errors can name the line; it refuses aliases (no billion laughs), duplicate
    keys and nesting deeper than :data:`MAX_DEPTH`."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(None, None, f"YAML alias *{event.anchor} is not accepted in a "
                           "registry (write the value out)", event.start_mark)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if event.anchor is not None:
            raise _Refused(None, None, f"YAML anchor &{event.anchor} is not accepted in a "
                           "registry (write the value out)", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                               event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise _Refused(None, None, "a mapping key must be a plain value",
                           key_node.start_mark) from None
        if key in mapping or key == LINE_KEY:
            raise _Refused(None, None, f"field {key!r} is given twice in this mapping",
                           key_node.start_mark)
        try:
            mapping[key] = loader.construct_object(value_node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. a date 2026-02-30
            raise _Refused(None, None, f"field {key!r}: {value_node.value!r} is not a valid "
                           f"value ({exc})", value_node.start_mark) from None
    mapping[LINE_KEY] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_FastLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):
    class _CLineLoader(yaml.CSafeLoader):
        """:class:`_LineLoader`'s mappings on libyaml's parser (~3x faster: a registry of
        10,000 meters parses in ~1 s instead of ~3.5 s)."""

    _CLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)
    _FastLoader = _CLineLoader


def _depth_ok(root: Any) -> bool:
    """Whether the node tree nests at most :data:`MAX_DEPTH` collections (iteratively)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, yaml.MappingNode):
            stack.extend((n, depth + 1) for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((n, depth + 1) for n in node.value)
    return True


def _load_all(text: str) -> list[Any]:
    """Every document of ``text``, built by :class:`_LineLoader` or, when libyaml is there and
    the text has no anchor or alias character (``&``, ``*``) anywhere, by the same
    constructors on libyaml's parser; anything that parser refuses or finds too deep goes
    through :class:`_LineLoader` again, so that errors read the same either way."""
    if _FastLoader is not None and "&" not in text and "*" not in text:
        loader = _FastLoader(text)
        try:
            nodes = []
            while loader.check_node():
                nodes.append(loader.get_node())
            if all(_depth_ok(n) for n in nodes):
                return [loader.construct_document(n) for n in nodes]
        except yaml.MarkedYAMLError:
            pass  # the pure-Python loader says it with its own words and line
        finally:
            loader.dispose()
    return list(yaml.load_all(text, Loader=_LineLoader))


def _yaml_error(source: str, exc: Exception) -> RegistryError:
    """A one-line registry error naming the file and the YAML line of ``exc``."""
    if isinstance(exc, _Refused) and exc.problem_mark is not None:
        return RegistryError(f"{source}: line {exc.problem_mark.line + 1}: {exc.problem}")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "unknown line"
        problem = exc.problem or exc.context or "syntax error"
        return RegistryError(f"{source}: {where}: not valid YAML: {problem}")
    return RegistryError(f"{source}: not valid YAML: {exc}")


def load_registry_document(text: str, source: str = "<registry>") -> Any:
    """Parse registry YAML text, recording line numbers; any refusal is a
    :class:`RegistryError` naming ``source`` and the line."""
    try:
        docs = _load_all(text)
        if len(docs) > 1:  # the Python loader's own message ("expected a single document")
            return yaml.load(text, Loader=_LineLoader)
        return docs[0] if docs else None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise _yaml_error(source, exc) from None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RegistryError(f"{source}: line {line}: the file is not UTF-8 text (byte "
                            f"{data[exc.start]:#04x} at offset {exc.start})") from None


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
        return "\n---\n".join(f"# file: {p.name}\n{_decode(p.read_bytes(), str(p))}"
                              for p in sorted(path.glob("*.yaml")))
    return _decode(path.read_bytes(), str(path))


def parse_registry_text(text: str, source: str) -> Registry:
    """Parse stored registry text: one YAML document, or several (a directory) merged."""
    try:
        docs = [d for d in _load_all(text) if d is not None]
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise _yaml_error(source, exc) from None
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
    doc = load_registry_document(_decode(path.read_bytes(), str(path)), str(path))
    return parse_registry(doc, source=str(path))
