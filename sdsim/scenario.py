"""Scenario files: schema, ``extends`` inheritance, lever time functions, validation.

A scenario names lever settings (policies, acting from the end of the calibration window) and
parameter overrides (other assumptions about the world; the run is re-calibrated under them).
Every error names the file, the key path and the value, and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .engine import check_dt
from .errors import InputError
from .model import Model
from .timefuncs import TimeFunction, parse_time_function
from .yamlio import as_number, as_str, check_keys, describe_value, join, load_file, load_text, suggest

KEYS = (
    "name", "title", "description", "extends", "start", "end", "dt", "method", "levers",
    "parameters", "recalibrate",
)
MAX_END = 2035
DEFAULT_DT = 1 / 16


@dataclass
class Scenario:
    """A resolved scenario (inheritance applied, values checked)."""

    name: str
    file: str
    title: dict[str, str] = field(default_factory=dict)
    description: str = ""
    start: int = 2020
    end: int = 2026
    dt: float = DEFAULT_DT
    method: str = "euler"
    levers: dict[str, TimeFunction] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)
    recalibrate: bool = True
    warnings: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # files from this one up to the root

    def label(self, lang: str = "en") -> str:
        """Display title in ``lang``."""
        return self.title.get(lang) or self.title.get("en") or self.name

    def resolved(self) -> dict[str, Any]:
        """The scenario as resolved, in scenario-file form (for manifests)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "start": self.start,
            "end": self.end,
            "dt": self.dt,
            "method": self.method,
            "recalibrate": self.recalibrate,
            "levers": {k: v.to_yaml() for k, v in self.levers.items()},
            "parameters": dict(self.parameters),
            "extends_chain": self.chain,
            "warnings": self.warnings,
        }


def _resolve_parent(ref: str, child: Path) -> Path:
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        p = Path(ref)
        return p if p.is_absolute() else child.parent / p
    return child.parent / f"{ref}.yaml"


def _raw_chain(path: Path, model: Model) -> list[tuple[Path, dict]]:
    """[(file, data)] from this file up to its root ancestor; cycles and missing parents are errors."""
    chain: list[tuple[Path, dict]] = []
    seen: list[Path] = []
    p = path
    while True:
        key = p.resolve()
        if key in seen:
            names = " -> ".join(str(s.name) for s in [*seen, key])
            raise InputError(f"'extends' forms a cycle: {names}", str(chain[-1][0]), "extends")
        seen.append(key)
        data = load_file(p)
        if data is None:
            data = {}
        check_keys(data, KEYS, str(p), "")
        chain.append((p, data))
        ref = data.get("extends")
        if ref is None:
            return chain
        ref = as_str(ref, str(p), "extends")
        parent = _resolve_parent(ref, p)
        if not parent.is_file():
            raise InputError(f"parent scenario {ref!r} not found (looked for {parent})", str(p), "extends")
        p = parent


def load_scenario(path: str | Path, model: Model) -> Scenario:
    """Load, inherit and validate a scenario file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", str(path))
    chain = _raw_chain(path, model)
    sc = Scenario(name=path.stem, file=str(path), chain=[str(p) for p, _ in chain])
    # apply from the root down, so children override parents key by key
    for p, data in reversed(chain):
        apply(sc, data, model, str(p), is_leaf=(p == path))
    validate(sc, model)
    return sc


def apply(sc: Scenario, data: dict, model: Model, file: str, is_leaf: bool = True) -> None:
    """Apply one file's keys to ``sc`` (values checked as they are read)."""
    if "name" in data and is_leaf:
        sc.name = as_str(data["name"], file, "name")
    if "title" in data:
        t = check_keys(data["title"], ("en", "zh"), file, "title")
        sc.title.update({k: as_str(v, file, f"title.{k}") for k, v in t.items()})
    if "description" in data and is_leaf:
        sc.description = as_str(data["description"], file, "description").strip()
    if "start" in data:
        sc.start = int(as_number(data["start"], file, "start", integer=True))
    if "end" in data:
        sc.end = int(as_number(data["end"], file, "end", integer=True))
    if "dt" in data:
        dt = as_number(data["dt"], file, "dt")
        try:
            check_dt(dt)
        except InputError as exc:
            raise InputError(exc.detail, file, "dt") from None
        sc.dt = dt
    if "method" in data:
        m = data["method"]
        if m not in ("euler", "rk4"):
            raise InputError(f"expected 'euler' or 'rk4', got {describe_value(m)}", file, "method")
        sc.method = m
    if "recalibrate" in data:
        if not isinstance(data["recalibrate"], bool):
            raise InputError(f"expected true or false, got {describe_value(data['recalibrate'])}", file, "recalibrate")
        sc.recalibrate = data["recalibrate"]
    levers = data.get("levers") or {}
    if not isinstance(levers, dict):
        raise InputError(f"expected a mapping lever -> value, got {describe_value(levers)}", file, "levers")
    for name, value in levers.items():
        sc.levers[name] = parse_lever(name, value, model, file, join("levers", str(name)))
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise InputError(f"expected a mapping parameter -> number, got {describe_value(params)}", file, "parameters")
    for name, value in params.items():
        sc.parameters[name] = parse_parameter(name, value, model, file, join("parameters", str(name)), sc)


def parse_lever(name: Any, value: Any, model: Model, file: str, path: str) -> TimeFunction:
    """Check a lever name and parse its time function within the lever's limits."""
    levers = model.levers
    if name not in levers:
        hint = suggest(str(name), levers)
        if name in model.params:
            hint = " (it is a parameter: set it under 'parameters')"
        raise InputError(f"unknown lever {name!r}{hint}", file, path)
    lo, hi = levers[name].limits
    return parse_time_function(value, file, path, lo, None if hi == float("inf") else hi)


def parse_parameter(name: Any, value: Any, model: Model, file: str, path: str, sc: Scenario) -> float:
    """Check a parameter override; out-of-range values are allowed with a warning."""
    if name in model.levers:
        raise InputError(f"{name!r} is a lever: set it under 'levers'", file, path)
    known = {**model.params, **model.facts}
    if name not in known:
        raise InputError(f"unknown parameter {name!r}{suggest(str(name), known)}", file, path)
    v = as_number(value, file, path)
    p = model.params.get(name)
    if p is not None and p.range is not None:
        lo, hi = p.range
        if lo >= 0 and v < 0:
            raise InputError(f"expected a number >= 0, got {value!r}", file, path)
        if not lo <= v <= hi:
            sc.warnings.append(f"{path} = {v:g} is outside its documented range [{lo:g}, {hi:g}]")
    elif v < 0 and (p is None or p.value >= 0):
        raise InputError(f"expected a number >= 0, got {value!r}", file, path)
    return v


def validate(sc: Scenario, model: Model) -> None:
    """Whole-scenario checks (after inheritance)."""
    cal = model.calibration
    if sc.start != cal.start:
        raise InputError(f"start must be {cal.start} (the calibrated t0), got {sc.start}", sc.file, "start")
    goal_year = max((g.year for g in model.goals.values()), default=cal.end + 1)
    if not goal_year <= sc.end <= MAX_END:
        raise InputError(f"end must be between {goal_year} and {MAX_END}, got {sc.end}", sc.file, "end")
    fixed = {f.name for f in cal.free} | set(model.facts)
    touched = sorted(fixed & set(sc.parameters))
    if touched and sc.recalibrate:
        raise InputError(
            f"{touched[0]!r} is a 2021 fact or calibrated value; changing it needs 'recalibrate: false'",
            sc.file, f"parameters.{touched[0]}",
        )
    for name, fn in sc.levers.items():
        pr = model.levers[name].policy_range
        vals = [fn.value] if fn.kind == "constant" else [fn.to] if fn.kind == "step" else \
            [v for _, v in fn.points] if fn.points else [model.levers[name].value + fn.size]
        if pr and any(not pr[0] <= v <= pr[1] for v in vals):
            sc.warnings.append(f"levers.{name} goes outside its policy range [{pr[0]:g}, {pr[1]:g}]")


def apply_set(sc: Scenario, assignment: str, model: Model) -> None:
    """Apply a command-line override ``name=value`` (validated exactly like YAML)."""
    where = "--set"
    if "=" not in assignment:
        raise InputError(f"expected name=value, got {assignment!r}", where)
    name, text = (s.strip() for s in assignment.split("=", 1))
    try:
        value = load_text(text, where)
    except InputError:
        raise InputError(f"cannot read value {text!r}", where, name) from None
    if name in model.levers:
        apply(sc, {"levers": {name: value}}, model, where)
    else:
        apply(sc, {"parameters": {name: value}}, model, where)
    validate(sc, model)


def dump(sc: Scenario) -> str:
    """The resolved scenario as YAML text."""
    return yaml.safe_dump(sc.resolved(), allow_unicode=True, sort_keys=False)
