"""Strict YAML reading: safe_load only, duplicate keys rejected, schema helpers.

Every check raises :class:`InputError` naming the file, the key path and the value.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed: the same YAML, ~10x faster


class _StrictLoader(_Base):  # type: ignore[misc,valid-type]
    """Safe loader (libyaml parser when available, PyYAML's safe constructor) that rejects duplicate keys."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping key given twice; ``path`` is the dotted key path, ``lines`` the 1-based lines."""

    def __init__(self, path: str, lines: tuple[int, int]) -> None:
        super().__init__(f"duplicate key {path!r}")
        self.path = path
        self.lines = lines


MAX_YAML_BYTES = 8 * 1024 * 1024  # a YAML input larger than this is refused (model files are a few KB)
MAX_YAML_NODES = 1_000_000  # scalars + collections after expanding every alias (an alias bomb is refused)
MAX_YAML_DEPTH = 64  # nesting of mappings and lists


class YamlLimitError(yaml.YAMLError):
    """A YAML document over a cap (size after alias expansion, depth) or with a self-referencing alias."""


def _where(path: str) -> str:
    return (path if len(path) <= 60 else path[:30] + "..." + path[-25:]) or "(top)"


def _check_nodes(root: yaml.Node) -> None:
    """One pass over the node graph, linear in the number of distinct nodes (an aliased node is visited once).

    Raises DuplicateKeyError for the first key given twice in a mapping, YamlLimitError when the
    document nests deeper than MAX_YAML_DEPTH, when an alias refers to a node that contains it, or
    when expanding every alias would give more than MAX_YAML_NODES nodes.
    """
    size: dict[int, int] = {}  # id(node) -> expanded node count, once finished
    on_path: set[int] = set()
    # iterative depth-first walk: (node, path, depth, entered)
    stack: list[tuple[yaml.Node, str, int, bool]] = [(root, "", 0, False)]
    while stack:
        node, path, depth, entered = stack.pop()
        key = id(node)
        if not isinstance(node, yaml.CollectionNode):
            size[key] = 1
            continue
        if entered:
            children = [v for kv in node.value for v in kv] if isinstance(node, yaml.MappingNode) else node.value
            total = 1 + sum(size[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise YamlLimitError(f"{_where(path)}: the document expands (with its aliases) to more than "
                                     f"{MAX_YAML_NODES:,} values; refusing to read it")
            size[key] = total
            on_path.discard(key)
            continue
        if key in on_path:
            raise YamlLimitError(f"{_where(path)}: an alias refers to a mapping or list that contains it")
        if key in size:
            continue
        if depth > MAX_YAML_DEPTH:
            raise YamlLimitError(f"{_where(path)}: nested more than {MAX_YAML_DEPTH} levels deep")
        on_path.add(key)
        stack.append((node, path, depth, True))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlLimitError(f"{_where(path)} (line {key_node.start_mark.line + 1}): a key must be "
                                         "a plain name or number, not a mapping or list")
                name = str(key_node.value)
                sub = join(path, name[:80])
                line = key_node.start_mark.line + 1
                if name in first and key_node.tag != "tag:yaml.org,2002:merge":
                    raise DuplicateKeyError(sub, (first[name], line))
                first[name] = line
                stack.append((key_node, sub, depth + 1, False))
                stack.append((value_node, sub, depth + 1, False))
        else:
            for i, item in enumerate(node.value):
                stack.append((item, join(path, i), depth + 1, False))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain name or number, got {type(key).__name__}", key_node.start_mark)
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
    """Parse YAML text with a safe loader that rejects duplicate keys.

    Linear in the size of the text: every node (an aliased one included) is checked once, and
    the caps MAX_YAML_BYTES, MAX_YAML_NODES (after alias expansion) and MAX_YAML_DEPTH apply.
    """
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"larger than {MAX_YAML_BYTES // 2**20} MiB; refusing to read it", file)
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_nodes(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except DuplicateKeyError as exc:
        a, b = exc.lines
        raise InputError(f"duplicate key (lines {a} and {b}); each key may appear once", file, exc.path) from None
    except YamlLimitError as exc:
        raise InputError(str(exc), file) from None
    except RecursionError:
        raise InputError(f"nested too deeply (more than {MAX_YAML_DEPTH} levels); refusing to read it", file) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        what = "a number has too many digits" if "digits" in str(exc) else short(str(exc), 100, quote=False)
        raise InputError(f"unreadable value: {what}", file) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"malformed YAML{where}: {problem}", file=file) from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is an InputError."""
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise InputError("is a directory, expected a YAML file", file=str(path))
        if not stat.S_ISREG(st.st_mode):  # a named pipe or a device (/dev/zero) would block or never end
            raise InputError("is not a regular file (a pipe, device or socket); expected a YAML file", file=str(path))
        if st.st_size > MAX_YAML_BYTES:
            raise InputError(f"larger than {MAX_YAML_BYTES // 2**20} MiB ({st.st_size:,} bytes); refusing to read it",
                             file=str(path))
        with p.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise InputError(f"larger than {MAX_YAML_BYTES // 2**20} MiB; refusing to read it", file=str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot read file: {reason}", file=str(path)) from None
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
    allowed_set = set(allowed)
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping, got {describe_value(data)}", file, path or "(top)")
    for key in data:
        if not isinstance(key, str) or key not in allowed_set:
            listed = ", ".join(allowed) if len(allowed) <= 40 else ", ".join(allowed[:40]) + ", ..."
            raise InputError(
                f"unknown key {short(key)}{suggest(str(key), allowed)}; allowed: {listed}",
                file,
                join(path, short(key, quote=False)),
            )
    for key in required:
        if key not in data:
            raise InputError(f"missing required key '{key}'", file, path or "(top)")
    return data


def as_mapping(data: Any, file: str, path: str) -> Mapping[str, Any]:
    """``data`` as a mapping of names (``None`` -> empty); a list or a scalar is an InputError naming ``path``."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping of names, got {describe_value(data)}", file, path)
    return data


def as_name(value: Any, file: str, path: str) -> str:
    """A name (text without spaces), e.g. a variable a goal or a target refers to."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a name, got {describe_value(value)}", file, path)
    return value


def join(path: str, key: str | int) -> str:
    """Join a dotted key path."""
    return f"{path}.{key}" if path else str(key)


def short(value: Any, limit: int = 60, quote: bool = True) -> str:
    """``repr`` of a value (plain ``str`` without ``quote``) cut to about ``limit`` characters, on one line."""
    text = repr(value) if quote else str(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


def describe_value(value: Any) -> str:
    """Short description of a value for error messages (long text is cut, so a file's content is never echoed)."""
    if isinstance(value, str):
        return short(value)
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
    if isinstance(value, int) and abs(value) > 10**300:
        raise InputError(f"expected a number{_bounds(lo, hi)}, got a number with {len(str(abs(value)))} digits",
                         file, path)
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(f"expected a finite number{_bounds(lo, hi)}, got {value!r}", file, path)
    if integer and not v.is_integer():
        raise InputError(f"expected an integer{_bounds(lo, hi)}, got {value!r}", file, path)
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
