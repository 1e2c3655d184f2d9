"""Strict YAML reading: safe_load only, duplicate keys rejected, schema helpers.

Every check raises :class:`InputError` naming the file, the key path and the value.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping key given twice; ``path`` is the dotted key path, ``lines`` the 1-based lines."""

    def __init__(self, path: str, lines: tuple[int, int]) -> None:
        super().__init__(f"duplicate key {path!r}")
        self.path = path
        self.lines = lines


def _check_duplicates(node: yaml.Node, path: str = "") -> None:
    """Raise DuplicateKeyError for the first key that appears twice in a mapping (any depth)."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            sub = join(path, key)
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(sub, (first[key], line))
            first[key] = line
            _check_duplicates(value_node, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, join(path, i))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads 1e3 and 1e-4 as text; accept them as numbers, as YAML 1.2 does.
# The resolver table is copied first so that yaml.SafeLoader itself is left unchanged.
_StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_text(text: str, file: str) -> Any:
    """Parse YAML text with a safe loader that rejects duplicate keys."""
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_duplicates(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except DuplicateKeyError as exc:
        a, b = exc.lines
        raise InputError(f"duplicate key (lines {a} and {b}); each key may appear once", file, exc.path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"malformed YAML{where}: {problem}", file=file) from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is an InputError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", file=str(path)) from None
    return load_text(text, str(path))


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(
    data: Any,
    allowed: Iterable[str],
    file: str,
    path: str,
    required: Iterable[str] = (),
) -> Mapping[str, Any]:
    """Check that ``data`` is a mapping with only ``allowed`` keys and all ``required`` keys."""
    allowed = list(allowed)
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping, got {describe_value(data)}", file, path or "(top)")
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise InputError(
                f"unknown key {key!r}{suggest(str(key), allowed)}; allowed: {', '.join(allowed)}",
                file,
                join(path, str(key)),
            )
    for key in required:
        if key not in data:
            raise InputError(f"missing required key '{key}'", file, path or "(top)")
    return data


def join(path: str, key: str | int) -> str:
    """Join a dotted key path."""
    return f"{path}.{key}" if path else str(key)


def describe_value(value: Any) -> str:
    """Short description of a value for error messages."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def as_number(
    value: Any,
    file: str,
    path: str,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
) -> float:
    """Check that ``value`` is a real number (not a bool) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise InputError(f"expected {kind}{_bounds(lo, hi)}, got {describe_value(value)}", file, path)
    if integer and int(value) != value:
        raise InputError(f"expected an integer{_bounds(lo, hi)}, got {value!r}", file, path)
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(f"expected a finite number, got {value!r}", file, path)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InputError(f"expected a number{_bounds(lo, hi)}, got {value!r}", file, path)
    return v


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def as_str(value: Any, file: str, path: str) -> str:
    """Check that ``value`` is a string."""
    if not isinstance(value, str):
        raise InputError(f"expected text, got {describe_value(value)}", file, path)
    return value


def as_dt(value: Any, file: str | None = None, path: str = "dt") -> float:
    """A time step written as a number or as "1/N": a power of two between 1/4096 and 1/4 (years)."""
    if isinstance(value, str) and re.fullmatch(r"\s*1\s*/\s*\d+\s*", value):
        value = 1 / int(value.replace(" ", "")[2:]) if int(value.replace(" ", "")[2:]) else value
    v = as_number(value, file or "", path) if file else _plain_number(value, path)
    mant, _ = math.frexp(v)
    if mant != 0.5 or not 2.0**-12 <= v <= 0.25:
        raise InputError(f"expected a power of two between 1/4096 and 1/4 (e.g. 1/16), got {value!r}", file, path)
    return v


def _plain_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {describe_value(value)}", None, path)
    return float(value)
