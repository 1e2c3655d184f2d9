"""Scenario files: schema, ``extends`` inheritance, lever time functions, validation.

A scenario names lever settings (policies, acting from the end of the calibration window) and
parameter overrides (other assumptions about the world; the run is re-calibrated under them).

Schema (all keys optional)::

    name: rd_push                      # result folder name (letters, digits, _ . -); default: file stem
    title: {en: ..., zh: ...}          # display title (a plain string is the English title)
    description: {en: ..., zh: ...}    # the policy story (a plain string is the English text)
    extends: baseline                  # parent file (name in the same folder, or a relative path)
    start: <year>                      # must be the model's t0 (default: it)
    policy_start: <year>               # first calendar year the levers act in (default: the model's, after its history)
    end: <year>                        # the goal year (default) .. the model's max_end (default t0 + 15)
    dt: 1/16                           # power of two <= 1/4 (number or "1/N")
    method: euler                      # euler | rk4
    recalibrate: true                  # false: keep the model's own calibration (needed to change calibration facts)
    levers: {name: number | {step|ramp|pulse|table: ...}}
    parameters: {name: number}         # a lever named here sets its baseline (today's level) from t0, re-calibrated
    tables: {name: {y: [numbers]}}     # other y values of a graphical function (same x); re-calibrated

Inheritance: the chain is applied from the root down; a child overrides its parents key by key
(each lever and each parameter separately). ``name``, ``title`` and ``description`` describe the
file itself and are not inherited. Every error names the file that set the value, the key path
and the value, and what is allowed; warnings (allowed but noteworthy values) are recomputed from
the resolved scenario and stored in ``Scenario.warnings``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .model import Model
from .timefuncs import TimeFunction, parse_time_function
from .yamlio import as_dt, as_number, as_str, check_keys, describe_value, join, load_file, load_text, suggest

KEYS = (
    "name", "title", "description", "extends", "start", "end", "dt", "method", "levers",
    "parameters", "recalibrate", "policy_start", "tables",
)
OWN_KEYS = ("name", "title", "description")  # describe the file itself: not inherited
SET_KEYS = ("end", "dt", "method", "recalibrate", "policy_start")  # top-level keys `--set` may change besides levers/parameters
MAX_YEARS = 15
DEFAULT_DT = 1 / 32  # only for scenarios built in code; files take the model's dt (structure.yaml)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Scenario:
    """A resolved scenario (inheritance applied, values checked).

    ``origins`` maps each key path that was set ("end", "levers.rd_subsidy", ...) to the file
    (or ``--set``) that set it, so that whole-scenario checks can name the right file.
    """

    name: str
    file: str
    start: int  # the model's t0 (calibration window start)
    end: int  # last year simulated (default: the model's goal year, :func:`goal_year`)
    title: dict[str, str] = field(default_factory=dict)
    description: str = ""  # English (or the only) description
    description_zh: str = ""  # Chinese description ('' when the file gives none)
    dt: float = DEFAULT_DT
    method: str = "euler"
    levers: dict[str, TimeFunction] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[float]] = field(default_factory=dict)  # graphical function -> y values
    recalibrate: bool = True
    policy_start: int | None = None  # first calendar year the levers act in (None: the model's default)
    warnings: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # files from this one up to the root
    origins: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # --set assignments applied

    def label(self, lang: str = "en") -> str:
        """Display title in ``lang``."""
        return self.title.get(lang) or self.title.get("en") or self.name

    def text(self, lang: str = "en") -> str:
        """The description in ``lang`` (the English one when there is none in ``lang``)."""
        return (self.description_zh if lang == "zh" else "") or self.description

    def where(self, key: str) -> str:
        """The file (or ``--set``) that set ``key``; the scenario's own file otherwise."""
        return self.origins.get(key, self.file)

    def resolved(self) -> dict[str, Any]:
        """The scenario as resolved, in scenario-file form (for manifests)."""
        return {
            "name": self.name,
            "file": self.file,
            "title": self.title,
            "description": ({"en": self.description, "zh": self.description_zh} if self.description_zh
                            else self.description),
            "start": self.start,
            "end": self.end,
            "dt": self.dt,
            "method": self.method,
            "recalibrate": self.recalibrate,
            "policy_start": self.policy_start,
            "levers": {k: v.to_yaml() for k, v in self.levers.items()},
            "parameters": dict(self.parameters),
            "tables": {k: {"y": list(v)} for k, v in self.tables.items()},
            "extends_chain": self.chain,
            "command_line_overrides": self.overrides,
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------------------- loading


def _resolve_parent(ref: str, child: Path) -> Path:
    """``extends: baseline`` -> baseline.yaml beside the child; a path is relative to the child's folder."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        p = Path(ref)
        return p if p.is_absolute() else child.parent / p
    return child.parent / f"{ref}.yaml"


def _raw_chain(path: Path) -> list[tuple[Path, dict]]:
    """[(file, data)] from this file up to its root ancestor; cycles and missing parents are errors."""
    chain: list[tuple[Path, dict]] = []
    seen: list[Path] = []
    p = path
    while True:
        key = p.resolve()
        if key in seen:
            names = " -> ".join(s.name for s in [*seen, key])
            prev = chain[-1][0]
            raise InputError(f"'extends' forms a cycle: {names} (value {chain[-1][1]['extends']!r})", str(prev), "extends")
        seen.append(key)
        data = load_file(p)
        if chain and (not isinstance(data, dict) or any(k not in KEYS for k in data)):
            # a parent that is not a scenario: name it, but never echo its content
            prev, ref = chain[-1][0], chain[-1][1]["extends"]
            raise InputError(f"{describe_value(ref)} ({p}) is not a scenario file (expected a mapping with keys "
                             f"such as name, levers, parameters)", str(prev), "extends")
        if data is None:
            raise InputError("the file is empty; a scenario is a mapping (name, title, levers, ...)", str(p))
        if not isinstance(data, dict):
            kind = "text" if isinstance(data, str) else "a list" if isinstance(data, list) else describe_value(data)
            raise InputError(f"expected a mapping (name, title, levers, ...), the file holds {kind}", str(p), "(top)")
        check_keys(data, KEYS, str(p), "")
        chain.append((p, data))
        if "extends" not in data:
            return chain
        ref = as_str(data["extends"], str(p), "extends").strip()
        if not ref:
            raise InputError("expected the name or path of a parent scenario, got ''", str(p), "extends")
        parent = _resolve_parent(ref, p)
        if not parent.is_file():
            raise InputError(f"parent scenario {ref!r} not found (looked for {parent})", str(p), "extends")
        p = parent


def load_scenario(path: str | Path, model: Model) -> Scenario:
    """Load, inherit and validate a scenario file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", str(path))
    chain = _raw_chain(path)
    sc = Scenario(name=path.stem, file=str(path), dt=model.dt, chain=[str(p) for p, _ in chain],
                  start=model.calibration.start, end=goal_year(model))
    # apply from the root down, so children override parents key by key
    for p, data in reversed(chain):
        apply(sc, data, model, str(p), is_leaf=(p == path))
    validate(sc, model)
    return sc


def _mapping(data: dict, key: str, file: str, what: str) -> dict:
    """``data[key]`` as a mapping; a missing key or an empty value (``levers:``) is an empty mapping."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"expected a mapping {what}, got {describe_value(value)}", file, key)
    return value


def apply(sc: Scenario, data: dict, model: Model, file: str, is_leaf: bool = True) -> None:
    """Apply one file's keys to ``sc`` (values checked as they are read)."""
    check_keys(data, KEYS, file, "")
    if is_leaf:
        if "name" in data:
            name = as_str(data["name"], file, "name")
            if not NAME_RE.match(name):
                raise InputError(
                    f"expected a short name of letters, digits, '_', '.', '-' (it names the result folder), got {name!r}",
                    file, "name")
            sc.name = name
        if "title" in data:
            title = data["title"]
            if isinstance(title, str):
                title = {"en": title}
            check_keys(title, ("en", "zh"), file, "title")
            sc.title = {k: as_str(v, file, f"title.{k}") for k, v in title.items()}
        if "description" in data:
            desc = data["description"]
            if isinstance(desc, str):
                desc = {"en": desc}
            if not isinstance(desc, dict):
                raise InputError(f"expected a text or a mapping {{en: ..., zh: ...}}, got {describe_value(desc)}",
                                 file, "description")
            check_keys(desc, ("en", "zh"), file, "description", required=("en",))
            texts = {k: as_str(v, file, f"description.{k}").strip() for k, v in desc.items()}
            sc.description, sc.description_zh = texts.get("en", ""), texts.get("zh", "")
    if "start" in data:
        sc.start = int(as_number(data["start"], file, "start", integer=True))
    if "end" in data:
        sc.end = int(as_number(data["end"], file, "end", integer=True))
    if "dt" in data:
        sc.dt = as_dt(data["dt"], file, "dt")
    if "policy_start" in data:
        sc.policy_start = int(as_number(data["policy_start"], file, "policy_start", integer=True))
    if "method" in data:
        m = data["method"]
        if m not in ("euler", "rk4"):
            raise InputError(f"expected 'euler' or 'rk4', got {describe_value(m)}", file, "method")
        sc.method = m
    if "recalibrate" in data:
        if not isinstance(data["recalibrate"], bool):
            raise InputError(f"expected true or false, got {describe_value(data['recalibrate'])}", file, "recalibrate")
        sc.recalibrate = data["recalibrate"]
    for key in ("start", "end", "dt", "method", "recalibrate", "policy_start"):
        if key in data:
            sc.origins[key] = file
    for name, value in _mapping(data, "levers", file, "lever -> value").items():
        path = join("levers", str(name))
        sc.levers[name] = parse_lever(name, value, model, file, path)
        sc.origins[path] = file
    for name, value in _mapping(data, "parameters", file, "parameter -> number").items():
        path = join("parameters", str(name))
        sc.parameters[name] = parse_parameter(name, value, model, file, path)
        sc.origins[path] = file
    for name, value in _mapping(data, "tables", file, "table -> {y: [...]}").items():
        path = join("tables", str(name))
        sc.tables[name] = parse_table(name, value, model, file, path)
        sc.origins[path] = file


def parse_table(name: Any, value: Any, model: Model, file: str, path: str) -> list[float]:
    """Check a table override ``{y: [...]}``: a known table and as many numbers as its x points."""
    if name not in model.tables:
        hint = suggest(str(name), model.tables) or "; `simulate.py describe` lists the tables"
        raise InputError(f"unknown table {name!r}{hint}", file, path)
    check_keys(value, ("y",), file, path, required=("y",))
    ys, n = value["y"], len(model.tables[name].x)
    if not isinstance(ys, list) or len(ys) != n:
        raise InputError(f"expected a list of {n} numbers (one per x point of the table), got {describe_value(ys)}",
                         file, join(path, "y"))
    return [as_number(v, file, join(path, f"y.{i}")) for i, v in enumerate(ys)]


def goal_year(model: Model) -> int:
    """The last goal year (the default end of a scenario); the year after t0 without goals."""
    return max((g.year for g in model.goals.values()), default=model.calibration.end + 1)


def max_end(model: Model) -> int:
    """The last year a scenario may run to."""
    return model.max_end if model.max_end is not None else model.calibration.start + MAX_YEARS


def parse_lever(name: Any, value: Any, model: Model, file: str, path: str) -> TimeFunction:
    """Check a lever name and parse its time function within the lever's limits."""
    levers = model.levers
    if name not in levers:
        if name in model.params or name in model.facts:
            hint = " (it is a parameter: set it under 'parameters')"
        else:
            hint = suggest(str(name), levers) or "; `simulate.py describe` lists the levers"
        raise InputError(f"unknown lever {name!r}{hint}", file, path)
    lo, hi = levers[name].limits
    return parse_time_function(value, file, path, lo, None if hi == float("inf") else hi)


def parse_parameter(name: Any, value: Any, model: Model, file: str, path: str) -> float:
    """Check a parameter override: a known name and a number (>= 0 where the parameter cannot be negative).

    Values outside the documented range are allowed; :func:`validate` turns them into warnings.
    """
    if name in model.levers:
        # an uncertain lever baseline (today's level, an assumption with a range): from t0, re-calibrated,
        # exactly as sensitivity samples it; a policy change from the first lever year belongs under 'levers'
        if model.levers[name].range is None:
            raise InputError(f"{name!r} is a lever: set it under 'levers' (only a lever whose baseline is uncertain, "
                             "with a range, takes a baseline value under 'parameters')", file, path)
        lo, hi = model.levers[name].limits
        return as_number(value, file, path, lo, None if hi == float("inf") else hi)
    known = {**model.constants, **model.facts}
    if name not in known:
        hint = suggest(str(name), known) or "; `simulate.py describe` lists the parameters"
        raise InputError(f"unknown parameter {name!r}{hint}", file, path)
    v = as_number(value, file, path)
    p = model.params.get(name)
    f = model.facts.get(name)
    nonneg = (p.range[0] >= 0 if p.range is not None else p.value >= 0) if p is not None else f.value >= 0  # type: ignore[union-attr]  # a known name is a parameter or a fact
    if nonneg and v < 0:
        raise InputError(f"expected a number >= 0, got {value!r}", file, path)
    if v == 0 and p is not None and _is_duration(p, model):
        raise InputError(f"expected a duration > 0 (years), got {value!r}", file, path)
    return v


def _is_duration(p: Any, model: Model) -> bool:
    """A parameter in years that is a length of time (a divisor), not a calendar year like rd_base_year."""
    return p.units == "year" and 0 < p.value < model.calibration.start


# ------------------------------------------------------------------------------- validation


def policy_start(sc: Scenario, model: Model) -> int:
    """First calendar year in which the scenario's levers act (its own policy_start, or the model's default)."""
    return sc.policy_start if sc.policy_start is not None else model.calibration.lever_start


def validate(sc: Scenario, model: Model) -> None:
    """Whole-scenario checks (after inheritance); recomputes ``sc.warnings``."""
    cal = model.calibration
    if sc.start != cal.start:
        raise InputError(f"expected {cal.start} (the model's t0; every run starts there), got {sc.start}",
                         sc.where("start"), "start")
    first, last = goal_year(model), max_end(model)
    if not first <= sc.end <= last:
        raise InputError(f"expected a year from {first} (the goal year) to {last}, got {sc.end}",
                         sc.where("end"), "end")
    fixed = {f.name for f in cal.free} | set(model.facts)
    touched = sorted(fixed & set(sc.parameters))
    if touched and sc.recalibrate:
        k = touched[0]
        raise InputError(
            f"{k!r} is a {cal.end} fact or calibrated value (got {sc.parameters[k]:g}); changing it needs 'recalibrate: false'",
            sc.where(f"parameters.{k}"), f"parameters.{k}",
        )
    first_lever_year = policy_start(sc, model)
    if sc.policy_start is not None and not cal.end < sc.policy_start <= sc.end:
        raise InputError(f"expected a year from {cal.end + 1} ({cal.end} is the calibration year) to the scenario's end "
                         f"({sc.end}), got {sc.policy_start}", sc.where("policy_start"), "policy_start")
    warnings: list[str] = []
    for name, fn in sc.levers.items():
        lever = model.levers[name]
        path = f"levers.{name}"
        file = sc.where(path)
        for suffix, year in fn.event_years():
            if year < first_lever_year:
                hint = (f"; set policy_start to start earlier, from {cal.end + 1}" if first_lever_year > cal.end + 1
                        else f" ({cal.end} is the calibration year)")
                raise InputError(
                    f"expected a year from {first_lever_year}: levers act from {first_lever_year} (the years before "
                    f"ran under baseline policies{hint}), got {year:g}",
                    file, join(path, suffix))
            if year > sc.end:
                warnings.append(f"{file}: {join(path, suffix)} = {year:g} is after the scenario's end ({sc.end}); "
                                "it has no effect")
        if fn.kind in ("ramp", "table"):
            early = [y for y, _ in fn.points if y < first_lever_year]
            if early:
                warnings.append(f"{file}: {path} has points before {first_lever_year} ({', '.join(f'{y:g}' for y in early)}); "
                                f"the lever acts from {first_lever_year} (the policy start), so they only shape the "
                                "interpolation")
        lo, hi = lever.limits
        for suffix, v in fn.levels(lever.value):
            if not lo <= v <= hi:
                raise InputError(f"the lever would reach {v:g}, outside its limits [{lo:g}, {hi:g}]",
                                 file, join(path, suffix))
        pr = lever.policy_range
        if pr is None:
            continue
        for suffix, v in fn.levels(lever.value):
            if not pr[0] <= v <= pr[1]:
                warnings.append(f"{file}: {join(path, suffix) if suffix else path} = {v:g} is outside the lever's "
                                f"policy range [{pr[0]:g}, {pr[1]:g}] ({lever.units})")
    for name, v in sc.parameters.items():
        path = f"parameters.{name}"
        p = model.params.get(name)
        if p is None:
            continue
        if p.range is not None:
            lo, hi = p.range
            if not lo <= v <= hi:
                warnings.append(f"{sc.where(path)}: {path} = {v:g} is outside its documented range "
                                f"[{lo:g}, {hi:g}] ({p.units})")
        elif p.provenance != "calibrated" and v != p.value:
            warnings.append(f"{sc.where(path)}: {path} = {v:g} overrides a fixed value ({p.value:g} {p.units}, "
                            f"{p.provenance}) that has no documented range")
    sc.warnings = warnings


def apply_set(sc: Scenario, assignment: str, model: Model) -> None:
    """Apply a command-line override ``name=value`` (validated exactly like YAML).

    ``name`` is a lever, a parameter, or one of end, dt, method, recalibrate.
    """
    where = "--set"
    if "=" not in assignment:
        raise InputError(f"expected NAME=VALUE, got {assignment!r}", where)
    name, text = (s.strip() for s in assignment.split("=", 1))
    if not name or not text:
        raise InputError(f"expected NAME=VALUE, got {assignment!r}", where)
    try:
        value = load_text(text, where)
    except InputError:
        raise InputError(f"cannot read value {text!r}", where, name) from None
    if name in SET_KEYS:
        apply(sc, {name: value}, model, where, is_leaf=False)
    elif name in model.levers:
        apply(sc, {"levers": {name: value}}, model, where, is_leaf=False)
    elif name in model.constants or name in model.facts:
        apply(sc, {"parameters": {name: value}}, model, where, is_leaf=False)
    else:
        choices = [*model.levers, *model.constants, *SET_KEYS]
        hint = suggest(name, choices) or "; `simulate.py describe` lists the levers and parameters"
        raise InputError(f"unknown lever or parameter {name!r}{hint}", where, name)
    sc.overrides.append(f"{name}={text}")
    validate(sc, model)
