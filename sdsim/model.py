"""The data types of a loaded model: variables, tables, parameters, facts, series, goals, calibration.

:func:`load_model` (in :mod:`sdsim.loader`, re-exported here) reads a model directory into a
:class:`Model`, checking every file strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import expressions as ex

if TYPE_CHECKING:  # at run time these come from __getattr__ below (loader imports this module)
    from .loader import default_model_dir, load_model, table_points

__all__ = [
    "COST_UNITS", "Calibration", "Fact", "FreeParameter", "Goal", "Model", "Parameter", "Series", "Table", "Target",
    "Variable", "cost_name", "default_model_dir", "load_model", "table_points",
]


class _Labelled:
    """Objects with en/zh labels and a name."""

    name: str
    en: str
    zh: str

    def label(self, lang: str = "en") -> str:
        """Display label in ``lang`` (falls back to English, then the name)."""
        return (self.zh if lang == "zh" else self.en) or self.en or self.name


@dataclass
class Variable(_Labelled):
    """A stock, flow, auxiliary or annual output. Units are strings such as ``firm/year``."""

    name: str
    kind: str  # stock | flow | aux | annual
    units: str
    expr: ex.Expr
    en: str = ""
    zh: str = ""
    note: str = ""
    sector: str = ""
    inflows: list[str] = field(default_factory=list)
    outflows: list[str] = field(default_factory=list)
    annual_total: bool = False  # auxiliaries: also record the integral over each year
    table: tuple[list[float], list[float]] | None = None  # graphical function of expr
    layer: str = "system"  # system | reporting (rule in force) | reported (published indicator)
    hidden: str = ""  # structure of a smooth/delay call: the variable whose equation holds the call
    fixed_delay: tuple[ex.Expr, ex.Expr] | None = None  # delay_fixed output: (delay time, initial value)


@dataclass
class Table(_Labelled):
    """A graphical function (``tables:`` in structure.yaml), called as ``lookup(name, x)``.

    Linear between the points, flat outside the end points. ``x_units`` are the units of the
    argument, ``units`` those of the value. With ``y_scale_range`` the table is an uncertainty:
    the parameter ``<name>_y_scale`` (s, value 1, that range) scales it as y' = 1 + s (y - 1).
    """

    name: str
    x: list[float]
    y: list[float]
    x_units: str
    units: str
    provenance: str = ""
    quote: str = ""
    formula: str = ""
    source: str = ""
    note: str = ""
    en: str = ""
    zh: str = ""
    y_scale_range: tuple[float, float] | None = None


@dataclass
class Parameter(_Labelled):
    """A constant or a lever with its value, units, range and provenance."""

    name: str
    value: float
    units: str
    provenance: str
    is_lever: bool = False
    range: tuple[float, float] | None = None
    distribution: str = "uniform"
    fixed: bool = False
    policy_range: tuple[float, float] | None = None
    limits: tuple[float, float] = (0.0, float("inf"))  # levers: hard bounds of scenario values
    role: str = "policy"  # levers: policy | external (conditions outside policy: GDP, shocks) | event (one-off)
    cost: str | None = None  # policy levers: equation of the lever's cost (CNY100M/year), compiled as cost_<name>
    quote: str = ""
    formula: str = ""
    source: str = ""
    note: str = ""
    en: str = ""
    zh: str = ""

    @property
    def uncertain(self) -> bool:
        """True when this number is sampled in uncertainty analysis."""
        return self.range is not None and not self.fixed and self.provenance != "calibrated"


@dataclass
class Fact:
    """An observed figure (observed.yaml)."""

    name: str
    value: float
    units: str
    provenance: str
    year: int | None = None
    quote: str = ""
    formula: str = ""
    source: str = ""
    note: str = ""
    en: str = ""
    zh: str = ""


@dataclass
class Series:
    """An annual exogenous series: observed values, then grown by a growth-rate lever."""

    name: str
    units: str
    values: dict[int, float]
    growth: str
    en: str = ""
    zh: str = ""
    provenance: str = ""
    source: str = ""


@dataclass
class Goal(_Labelled):
    """A goal: ``variable`` in ``year`` compared with ``threshold`` by ``test``."""

    name: str
    variable: str
    test: str
    threshold: float
    units: str
    year: int
    poisson: bool = False
    observed: str | None = None
    reported: str | None = None  # the published indicator of the same quantity (reported_<name>)
    threshold_scale: str | None = None  # parameter scaling the threshold into the reporting scope
    quote: str = ""
    note: str = ""
    en: str = ""
    zh: str = ""


@dataclass
class Target:
    """A calibration target: a variable (or a stock's inflows) in a year equal to a value."""

    name: str
    year: int
    value_name: str
    variable: str | None = None
    inflows_of: str | None = None


@dataclass
class FreeParameter:
    """A parameter solved by calibration, with bounds (numbers or names of constants)."""

    name: str
    lower: float | str | None = None
    upper: float | str | None = None
    rate: bool = False
    pins: str = ""


@dataclass
class Calibration:
    """Calibration window, free parameters and targets."""

    start: int
    end: int
    free: list[FreeParameter]
    targets: list[Target]
    policy_start: int | None = None  # first calendar year scenario levers act in (default: end + 1)

    @property
    def lever_start(self) -> int:
        """First calendar year in which a scenario's levers act by default."""
        return self.policy_start if self.policy_start is not None else self.end + 1


@dataclass
class Model:
    """A loaded, checked model. Names are unique across all kinds."""

    directory: Path
    stocks: dict[str, Variable]
    flows: dict[str, Variable]
    aux: dict[str, Variable]
    annual: dict[str, Variable]
    params: dict[str, Parameter]
    facts: dict[str, Fact]
    series: dict[str, Series]
    goals: dict[str, Goal]
    calibration: Calibration
    sectors: dict[str, dict[str, str]]
    out_of_scope: list[dict[str, Any]]
    context: dict[str, Any]
    file_hashes: dict[str, str]
    dt: float = 1 / 32  # default integration step (years), from structure.yaml
    history: Any = None  # history.History of history.yaml (None when the model has no history file)
    tables: dict[str, Table] = field(default_factory=dict)  # graphical functions, by name
    stock_functions: list[Any] = field(default_factory=list)  # stockfns.StockFunction, one per smooth/delay call
    max_end: int | None = None  # last year a scenario may run to (structure.yaml max_end; default t0 + 15)
    figures: Any = None  # figures_spec.Figures of figures.yaml (None: the model declares no figures besides goals)

    @property
    def levers(self) -> dict[str, Parameter]:
        """The levers (policy inputs), by name."""
        return {k: p for k, p in self.params.items() if p.is_lever}

    @property
    def constants(self) -> dict[str, Parameter]:
        """Parameters that are not levers."""
        return {k: p for k, p in self.params.items() if not p.is_lever}

    def variable(self, name: str) -> Variable:
        """A stock, flow, auxiliary or annual output by name."""
        for group in (self.stocks, self.flows, self.aux, self.annual):
            if name in group:
                return group[name]
        raise KeyError(name)

    @property
    def variables(self) -> dict[str, Variable]:
        """All stocks, flows, auxiliaries and annual outputs."""
        return {**self.stocks, **self.flows, **self.aux, **self.annual}

    def base_values(self) -> dict[str, float]:
        """Baseline values of all parameters, levers and facts (name -> number)."""
        out = {k: f.value for k, f in self.facts.items()}
        out.update({k: p.value for k, p in self.params.items()})
        return out


COST_UNITS = "CNY100M/year"  # 亿元 per year: the units every lever cost equation must have


def cost_name(lever: str) -> str:
    """The auxiliary that records a policy lever's cost (annual totals in 亿元): ``cost_<lever>``."""
    return f"cost_{lever}"


_LOADER_NAMES = ("load_model", "default_model_dir", "table_points")


def __getattr__(name: str) -> Any:
    """``load_model``, ``default_model_dir`` and ``table_points`` live in :mod:`sdsim.loader` (re-exported)."""
    if name in _LOADER_NAMES:
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
