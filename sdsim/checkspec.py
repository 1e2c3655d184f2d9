"""``checks.yaml``: the declared validity tests of a model, read and checked strictly.

The file holds, as data: the tolerances of the check table, the reality checks (a condition ->
the behaviour expected, after Vensim's Reality Check), behaviour figures to reproduce, reported
comparisons that never fail, and the feedback loops the model is meant to contain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError
from .model import Model
from .yamlio import as_number, as_str, check_keys, join, load_file, suggest

#: Tolerances of a model without checks.yaml (relative): mass balance, dt halving, Euler vs RK4, calibration,
#: reproduced figures.
DEFAULT_TOLERANCES = {"mass_balance": 1e-9, "dt_convergence": 0.01, "method_agreement": 0.01, "calibration": 1e-6,
                      "behaviour": 1e-6}
TOLERANCES = ("mass_balance", "dt_convergence", "method_agreement", "calibration", "behaviour")
TESTS = ("finite", "nonnegative", "between", "decreasing", "increasing", "max_growth")
LEVER_WORDS = ("baseline", "policy_low", "policy_high", "limit_low", "limit_high")
PARAM_WORDS = ("low", "high")


@dataclass
class Expectation:
    """``test`` holds for ``variables`` (names, or 'stocks' / 'all'); years from ``start`` on."""

    test: str
    variables: list[str] | str
    bounds: tuple[float | str, float | str] | None = None  # numbers or variable names
    start: int | None = None
    rate: float | None = None  # max_growth: largest yearly growth, measured on max(value, its reference-year level)
    exempt: list[str] = field(default_factory=list)  # max_growth: variables left out (named in the check)


@dataclass
class RealityCheck:
    """A condition (lever settings, parameter overrides, forced variables) and what must follow."""

    name: str
    expect: list[Expectation]
    levers: dict[str, float | str] = field(default_factory=dict)
    parameters: dict[str, float | str] = field(default_factory=dict)
    force: dict[str, float] = field(default_factory=dict)
    each_lever: dict[str, Any] | None = None  # {factor: F} or {at: limit_low}: one run per lever
    en: str = ""
    zh: str = ""

    def label(self, lang: str = "en") -> str:
        """Display label."""
        return (self.zh if lang == "zh" else self.en) or self.en or self.name


@dataclass
class Figure:
    """A behaviour figure (``kind`` = variable | change_of | inflows_of | rate_at_start) vs a value."""

    name: str
    kind: str
    variable: str
    value_name: str
    year: int | None = None
    en: str = ""
    zh: str = ""
    note: str = ""


@dataclass
class DeclaredLoop:
    """A named loop: an exact ``cycle`` (in order) or the shortest loop ``through`` some variables."""

    name: str
    polarity: str
    cycle: list[str] | None = None
    through: list[str] | None = None
    en: str = ""
    zh: str = ""


@dataclass
class Corners:
    """Extreme-condition corners (docs/checks.md): random vertices of the uncertainty ranges, a Latin
    hypercube, all-low and all-high, each re-calibrated and run to ``end`` in one batch; ``downturn`` repeats
    the batch with lever settings (e.g. GDP falling) and its own expectations."""

    vertices: int
    lhs: int
    seed: int
    end: int
    expect: list[Expectation]
    downturn_levers: dict[str, float] = field(default_factory=dict)
    downturn_expect: list[Expectation] = field(default_factory=list)
    en: str = ""
    zh: str = ""

    def label(self, lang: str = "en") -> str:
        """Display label."""
        return (self.zh if lang == "zh" else self.en) or self.en or "corners"


@dataclass
class CheckSpec:
    """Everything in checks.yaml."""

    tolerances: dict[str, float]
    dt_halvings: int
    reality: list[RealityCheck]
    behaviour: list[Figure]
    comparisons: list[Figure]
    loops: list[DeclaredLoop]
    corners: Corners | None = None


def load_checks(model: Model) -> CheckSpec:
    """Read ``checks.yaml`` beside the model files (without one: default tolerances, no declared checks)."""
    path = model.directory / "checks.yaml"
    file = str(path)
    data = load_file(path) if path.is_file() else {"tolerances": DEFAULT_TOLERANCES, "reality_checks": {}}
    check_keys(data, ("tolerances", "dt_halvings", "reality_checks", "behaviour", "comparisons", "loops", "corners"),
               file, "",
               required=("tolerances", "reality_checks"))
    tol = check_keys(data["tolerances"], TOLERANCES, file, "tolerances", required=TOLERANCES)
    tolerances = {k: as_number(v, file, join("tolerances", k), lo=0) for k, v in tol.items()}
    halvings = int(as_number(data.get("dt_halvings", 2), file, "dt_halvings", lo=1, hi=6, integer=True))
    variables = {*model.stocks, *model.flows, *model.aux, *model.annual}
    reality = [_reality(name, e, model, variables, file) for name, e in (data["reality_checks"] or {}).items()]
    behaviour = [_figure(n, e, model, file, "behaviour") for n, e in (data.get("behaviour") or {}).items()]
    comparisons = [_figure(n, e, model, file, "comparisons") for n, e in (data.get("comparisons") or {}).items()]
    loops = [_loop(n, e, model, file) for n, e in (data.get("loops") or {}).items()]
    corners = _corners(data["corners"], model, variables, file) if "corners" in data else None
    return CheckSpec(tolerances, halvings, reality, behaviour, comparisons, loops, corners)


def _corners(e: Any, model: Model, variables: set[str], file: str) -> Corners:
    path = "corners"
    check_keys(e, ("en", "zh", "vertices", "lhs", "seed", "end", "expect", "downturn"), file, path,
               required=("vertices", "lhs", "seed", "end", "expect"))
    c = Corners(
        vertices=int(as_number(e["vertices"], file, join(path, "vertices"), lo=0, hi=100_000, integer=True)),
        lhs=int(as_number(e["lhs"], file, join(path, "lhs"), lo=0, hi=100_000, integer=True)),
        seed=int(as_number(e["seed"], file, join(path, "seed"), lo=0, integer=True)),
        end=int(as_number(e["end"], file, join(path, "end"), integer=True)),
        expect=_expectations(e["expect"], variables, file, join(path, "expect")),
        en=e.get("en", ""), zh=e.get("zh", ""),
    )
    if "downturn" in e:
        d = check_keys(e["downturn"], ("levers", "expect"), file, join(path, "downturn"), required=("levers", "expect"))
        for lever, v in (d["levers"] or {}).items():
            p = join(path, f"downturn.levers.{lever}")
            if lever not in model.levers:
                raise ModelError(f"unknown lever {lever!r}{suggest(str(lever), model.levers)}", file, p)
            c.downturn_levers[lever] = as_number(v, file, p)
        c.downturn_expect = _expectations(d["expect"], variables, file, join(path, "downturn.expect"))
    return c


def _names(value: Any, allowed: set[str], file: str, path: str, words: tuple[str, ...] = ()) -> list[str] | str:
    if isinstance(value, str) and value in words:
        return value
    if not isinstance(value, list) or not value:
        raise ModelError(f"expected a list of variable names{' or ' + ', '.join(words) if words else ''}, "
                         f"got {value!r}", file, path)
    for i, v in enumerate(value):
        if v not in allowed:
            raise ModelError(f"unknown variable {v!r}{suggest(str(v), allowed)}", file, join(path, i))
    return list(value)


def _reality(name: str, e: Any, model: Model, variables: set[str], file: str) -> RealityCheck:
    path = f"reality_checks.{name}"
    check_keys(e, ("en", "zh", "levers", "parameters", "force", "each_lever", "expect"), file, path,
               required=("expect",))
    rc = RealityCheck(name=name, expect=[], en=e.get("en", ""), zh=e.get("zh", ""))
    for lever, v in (e.get("levers") or {}).items():
        p = join(path, f"levers.{lever}")
        if lever not in model.levers:
            raise ModelError(f"unknown lever {lever!r}{suggest(str(lever), model.levers)}", file, p)
        rc.levers[lever] = v if v in LEVER_WORDS else as_number(v, file, p)
    for param, v in (e.get("parameters") or {}).items():
        p = join(path, f"parameters.{param}")
        if param not in model.params or param in model.levers:
            raise ModelError(f"unknown parameter {param!r}{suggest(str(param), model.constants)}", file, p)
        if v in PARAM_WORDS and model.params[param].range is None:
            raise ModelError(f"{param} has no range, so {v!r} means nothing", file, p)
        rc.parameters[param] = v if v in PARAM_WORDS else as_number(v, file, p)
    for var, v in (e.get("force") or {}).items():
        p = join(path, f"force.{var}")
        if var not in {*model.flows, *model.aux}:
            raise ModelError(f"only flows and auxiliaries can be forced, not {var!r}", file, p)
        if model.variable(var).table is not None or model.variable(var).expr.is_initial:
            raise ModelError(f"{var} is a graphical function or initial value and cannot be forced", file, p)
        rc.force[var] = as_number(v, file, p)
    if "each_lever" in e:
        each = check_keys(e["each_lever"], ("factor", "at"), file, join(path, "each_lever"))
        if len(each) != 1:
            raise ModelError("give one of 'factor' or 'at'", file, join(path, "each_lever"))
        if "factor" in each:
            rc.each_lever = {"factor": as_number(each["factor"], file, join(path, "each_lever.factor"), lo=0)}
        elif each["at"] in LEVER_WORDS:
            rc.each_lever = {"at": each["at"]}
        else:
            raise ModelError(f"'at' must be one of {', '.join(LEVER_WORDS)}, got {each['at']!r}", file,
                             join(path, "each_lever.at"))
    rc.expect = _expectations(e["expect"], variables, file, join(path, "expect"))
    return rc


def _expectations(expect: Any, variables: set[str], file: str, path: str) -> list[Expectation]:
    if not isinstance(expect, list) or not expect:
        raise ModelError("expected a list of expectations", file, path)
    out = []
    for i, x in enumerate(expect):
        p = join(path, i)
        check_keys(x, ("test", "variables", "bounds", "from", "rate", "exempt"), file, p, required=("test", "variables"))
        if x["test"] not in TESTS:
            raise ModelError(f"test must be one of {', '.join(TESTS)}, got {x['test']!r}", file, join(p, "test"))
        ex = Expectation(x["test"], _names(x["variables"], variables, file, join(p, "variables"), ("stocks", "all")))
        if x["test"] == "between":
            if "bounds" not in x:
                raise ModelError("'between' needs bounds: [low, high]", file, p)
            b = x["bounds"]
            if not isinstance(b, list) or len(b) != 2:
                raise ModelError(f"expected [low, high], got {b!r}", file, join(p, "bounds"))
            ex.bounds = (_bound(b[0], variables, file, join(p, "bounds.0")), _bound(b[1], variables, file, join(p, "bounds.1")))
        if "from" in x:
            ex.start = int(as_number(x["from"], file, join(p, "from"), integer=True))
        if x["test"] == "max_growth":
            if "rate" not in x:
                raise ModelError("'max_growth' needs a rate (per year)", file, p)
            ex.rate = as_number(x["rate"], file, join(p, "rate"), lo=0)
            ex.exempt = _names(x["exempt"], variables, file, join(p, "exempt")) if "exempt" in x else []  # type: ignore[assignment]
        elif "rate" in x or "exempt" in x:
            raise ModelError("'rate' and 'exempt' belong to the max_growth test", file, p)
        out.append(ex)
    return out


def _bound(value: Any, variables: set[str], file: str, path: str) -> float | str:
    if isinstance(value, str) and value in variables:
        return value
    if isinstance(value, str) and value.isidentifier():
        raise ModelError(f"unknown variable {value!r}{suggest(value, variables)}", file, path)
    return as_number(value, file, path)


_FIGURE_KINDS = ("variable", "change_of", "inflows_of", "rate_at_start")


def _figure(name: str, e: Any, model: Model, file: str, section: str) -> Figure:
    path = f"{section}.{name}"
    check_keys(e, (*_FIGURE_KINDS, "year", "value", "en", "zh", "note"), file, path, required=("value",))
    kinds = [k for k in _FIGURE_KINDS if k in e]
    if len(kinds) != 1:
        raise ModelError(f"give exactly one of {', '.join(_FIGURE_KINDS)}", file, path)
    kind = kinds[0]
    var = as_str(e[kind], file, join(path, kind))
    allowed = model.stocks if kind in ("change_of", "inflows_of") else {*model.stocks, *model.flows, *model.aux}
    if var not in allowed:
        raise ModelError(f"unknown variable {var!r}{suggest(var, allowed)}", file, join(path, kind))
    if kind != "rate_at_start" and "year" not in e:
        raise ModelError("missing required key 'year'", file, path)
    consts = {*model.facts, *model.params}
    value = e["value"]
    if value not in consts:
        raise ModelError(f"unknown fact or parameter {value!r}{suggest(str(value), consts)}", file, join(path, "value"))
    year = int(as_number(e["year"], file, join(path, "year"), integer=True)) if "year" in e else None
    return Figure(name, kind, var, value, year, e.get("en", ""), e.get("zh", ""), e.get("note", ""))


def _loop(name: str, e: Any, model: Model, file: str) -> DeclaredLoop:
    path = f"loops.{name}"
    check_keys(e, ("polarity", "cycle", "through", "en", "zh"), file, path, required=("polarity",))
    if e["polarity"] not in ("R", "B"):
        raise ModelError(f"polarity must be R or B, got {e['polarity']!r}", file, join(path, "polarity"))
    if ("cycle" in e) == ("through" in e):
        raise ModelError("give exactly one of 'cycle' or 'through'", file, path)
    variables = {*model.stocks, *model.flows, *model.aux}
    key = "cycle" if "cycle" in e else "through"
    names = _names(e[key], variables, file, join(path, key))
    assert isinstance(names, list)
    return DeclaredLoop(name, e["polarity"], names if key == "cycle" else None, names if key == "through" else None,
                        e.get("en", ""), e.get("zh", ""))
