"""Dimensional analysis of a model: unit strings, the units of every equation, stock/flow consistency.

Units are products of powers of base units written as in the model files: ``firm``,
``carrier``, ``CNY100M/firm/year``, ``1/year``, ``year^2``, ``dmnl`` (dimensionless). Any
identifier is a base unit; ``/`` divides everything to its right up to the next ``*`` or ``/``
(``a/b/c`` = a·b⁻¹·c⁻¹). A unit is stored as a sorted tuple of (base, exponent) pairs.

Rules (a small checker, lighter than pint and exact for this vocabulary):

* ``+ - min max clip if_then_else`` and comparisons need operands of equal units;
* ``* /`` combine units; ``x ** p`` needs a dimensionless ``p``, and a constant ``p`` when ``x``
  has units; ``sqrt`` halves exponents;
* ``exp`` and ``log`` (and the input of a per-variable ``table``) need a dimensionless argument;
* ``lookup(table, x)``: ``x`` has the table's ``x_units``; the value has the table's ``units``;
* ``smooth``/``smooth3``/``delay1``/``delay3``/``delay_fixed(x, T, x0)``: T in years, x0 in the units of
  x; the value has the units of x (the hidden stocks and flows behind them are consistent by
  construction and are not checked again);
* ``time`` and the start/end arguments of ``step``, ``ramp``, ``pulse`` are in the time unit (year);
* the literal 0 fits any units; every other literal is dimensionless;
* a stock's initial value has the stock's units; each of its flows has the stock's units per year;
* an annual output reads flows as their mean rate over the year (annual total ÷ one year).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

from .model import Model, Variable

TIME_UNIT = "year"  # model.py accepts only ``time_units: year``
DIMENSIONLESS_NAMES = ("dmnl", "1")

Units = tuple[tuple[str, Fraction], ...]
DMNL: Units = ()


class UnitsError(Exception):
    """A unit string that cannot be read, or an equation whose units do not combine."""


class _Any:
    """The units of the literal 0: compatible with anything."""

    def __repr__(self) -> str:
        return "any"


ANY = _Any()
U = Units | _Any


@dataclass
class Issue:
    """One dimensional inconsistency: file, key path, message."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


# ------------------------------------------------------------------------------------ unit strings

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>-?\d+(?:/\d+)?)|(?P<op>\*\*|[*/^()]))")


def _make(d: dict[str, Fraction]) -> Units:
    return tuple(sorted((k, v) for k, v in d.items() if v != 0))


def multiply(a: Units, b: Units, power: Fraction | int = 1) -> Units:
    """``a · b**power``."""
    d = dict(a)
    for k, v in b:
        d[k] = d.get(k, Fraction(0)) + v * power
    return _make(d)


def power(a: Units, p: Fraction | int) -> Units:
    """``a ** p``."""
    return _make({k: v * Fraction(p) for k, v in a})


def parse_units(text: str) -> Units:
    """Read a unit string such as ``CNY100M/firm/year``; raise :class:`UnitsError` if unreadable."""
    if not isinstance(text, str) or not text.strip():
        raise UnitsError(f"empty unit string {text!r}")
    tokens: list[tuple[str, str]] = []
    pos = 0
    s = text.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise UnitsError(f"cannot read units {text!r} at {s[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    out, i = _product(tokens, 0, text)
    if i != len(tokens):
        raise UnitsError(f"cannot read units {text!r}")
    return out


def _product(tokens: list[tuple[str, str]], i: int, text: str) -> tuple[Units, int]:
    result, i = _factor(tokens, i, text)
    while i < len(tokens) and tokens[i] in (("op", "*"), ("op", "/")):
        op = tokens[i][1]
        f, i = _factor(tokens, i + 1, text)
        result = multiply(result, f, 1 if op == "*" else -1)
    return result, i


def _factor(tokens: list[tuple[str, str]], i: int, text: str) -> tuple[Units, int]:
    if i >= len(tokens):
        raise UnitsError(f"units {text!r} end too early")
    kind, val = tokens[i]
    if kind == "name":
        base: Units = DMNL if val in DIMENSIONLESS_NAMES else ((val, Fraction(1)),)
        i += 1
    elif kind == "num" and val == "1":
        base, i = DMNL, i + 1
    elif (kind, val) == ("op", "("):
        base, i = _product(tokens, i + 1, text)
        if i >= len(tokens) or tokens[i] != ("op", ")"):
            raise UnitsError(f"unbalanced parenthesis in units {text!r}")
        i += 1
    else:
        raise UnitsError(f"unexpected {val!r} in units {text!r}")
    if i < len(tokens) and tokens[i] in (("op", "^"), ("op", "**")):
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "num":
            raise UnitsError(f"expected an integer or fraction exponent in units {text!r}")
        base = power(base, Fraction(tokens[i + 1][1]))
        i += 2
    return base, i


def format_units(u: U) -> str:
    """Readable form: ``CNY100M/firm/year``, ``dmnl``, ``any``."""
    if isinstance(u, _Any):
        return "any"
    if not u:
        return "dmnl"

    def term(k: str, v: Fraction) -> str:
        v = abs(v)
        return k if v == 1 else f"{k}^{v}"

    num = [term(k, v) for k, v in u if v > 0]
    den = [term(k, v) for k, v in u if v < 0]
    text = "*".join(num) or "1"
    return text + "".join(f"/{d}" for d in den)


def same(a: U, b: U) -> bool:
    """Equal units (the literal 0 matches anything)."""
    return isinstance(a, _Any) or isinstance(b, _Any) or a == b


# ---------------------------------------------------------------------------------- equations

_TIME_ARGS = {"step": (1,), "ramp": (1, 2), "pulse": (0, 1)}


class _Infer:
    """Units of one expression tree, given the units of every name."""

    def __init__(self, names: dict[str, Units], tables: dict[str, tuple[Units, Units]] | None = None) -> None:
        self.names = names
        self.tables = tables or {}
        self.time: Units = ((TIME_UNIT, Fraction(1)),)

    def __call__(self, node: ast.AST) -> U:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:  # pragma: no cover - expressions.parse() admits no other node
            raise UnitsError(f"cannot check {type(node).__name__}")
        return method(node)

    def _Constant(self, node: ast.Constant) -> U:
        return ANY if node.value == 0 else DMNL

    def _Name(self, node: ast.Name) -> U:
        if node.id == "time":
            return self.time
        if node.id not in self.names:
            raise UnitsError(f"'{node.id}' has no readable units")
        return self.names[node.id]

    def _UnaryOp(self, node: ast.UnaryOp) -> U:
        return self(node.operand)

    def _equal(self, parts: list[ast.AST], what: str) -> U:
        units = [self(p) for p in parts]
        known = [u for u in units if not isinstance(u, _Any)]
        for u, p in zip(units, parts, strict=True):
            if known and not same(u, known[0]):
                raise UnitsError(
                    f"{what} of unequal units: {ast.unparse(parts[units.index(known[0])])!r} is "
                    f"{format_units(known[0])}, {ast.unparse(p)!r} is {format_units(u)}"
                )
        return known[0] if known else ANY

    def _BinOp(self, node: ast.BinOp) -> U:
        if isinstance(node.op, ast.Add | ast.Sub):
            return self._equal([node.left, node.right], "sum" if isinstance(node.op, ast.Add) else "difference")
        if isinstance(node.op, ast.Pow):
            return self._pow(node)
        a, b = self(node.left), self(node.right)
        if isinstance(a, _Any) or isinstance(b, _Any):
            return ANY if isinstance(a, _Any) else (b if isinstance(node.op, ast.Mult) else ANY)
        return multiply(a, b, 1 if isinstance(node.op, ast.Mult) else -1)

    def _pow(self, node: ast.BinOp) -> U:
        base, expo = self(node.left), self(node.right)
        if not same(expo, DMNL):
            raise UnitsError(f"exponent {ast.unparse(node.right)!r} has units {format_units(expo)}, expected dmnl")
        if isinstance(base, _Any) or base == DMNL:
            return base
        value = _constant(node.right)
        if value is None:
            raise UnitsError(
                f"{ast.unparse(node.left)!r} ({format_units(base)}) is raised to a non-constant power "
                f"{ast.unparse(node.right)!r}; only a dimensionless base may be"
            )
        return power(base, Fraction(value).limit_denominator(1000))

    def _Compare(self, node: ast.Compare) -> U:
        self._equal([node.left, node.comparators[0]], "comparison")
        return DMNL

    def _Call(self, node: ast.Call) -> U:
        name = node.func.id  # type: ignore[attr-defined]
        args = node.args
        if name in ("min", "max", "clip"):
            return self._equal(list(args), f"{name}() arguments")
        if name in ("abs", "initial"):
            return self(args[0])
        if name == "lookup":
            table = args[0].id  # type: ignore[attr-defined]
            if table not in self.tables:
                raise UnitsError(f"table '{table}' has no readable units")
            x_units, units = self.tables[table]
            u = self(args[1])
            if not same(u, x_units):
                raise UnitsError(f"lookup({table}, ...) argument {ast.unparse(args[1])!r} has units "
                                 f"{format_units(u)}, but the table's x_units are {format_units(x_units)}")
            return units
        if name in ("smooth", "smooth3", "delay1", "delay3", "delay_fixed"):
            u = self(args[0])
            d = self(args[1])
            if not same(d, self.time):
                raise UnitsError(f"{name}() delay time {ast.unparse(args[1])!r} has units {format_units(d)}, "
                                 f"expected {TIME_UNIT}")
            if len(args) == 3:
                u0 = self(args[2])
                if not same(u0, u):
                    raise UnitsError(f"{name}() initial value {ast.unparse(args[2])!r} has units {format_units(u0)}, "
                                     f"but its input {ast.unparse(args[0])!r} has {format_units(u)}")
            return u
        if name in ("exp", "log"):
            u = self(args[0])
            if not same(u, DMNL):
                raise UnitsError(f"{name}() of {ast.unparse(args[0])!r}, which has units {format_units(u)}")
            return DMNL
        if name == "sqrt":
            u = self(args[0])
            return u if isinstance(u, _Any) else power(u, Fraction(1, 2))
        if name == "if_then_else":
            self(args[0])
            return self._equal([args[1], args[2]], "if_then_else() branches")
        if name in _TIME_ARGS:
            for i in _TIME_ARGS[name]:
                u = self(args[i])
                if not same(u, self.time):
                    raise UnitsError(
                        f"{name}() time argument {ast.unparse(args[i])!r} has units {format_units(u)}, expected {TIME_UNIT}"
                    )
            if name == "step":
                return self(args[0])
            if name == "ramp":
                u = self(args[0])
                return u if isinstance(u, _Any) else multiply(u, self.time)
            return DMNL
        raise UnitsError(f"unknown function {name}()")  # pragma: no cover


def _constant(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _constant(node.operand)
        return None if v is None else -v
    return None


def expression_units(tree: ast.AST, names: dict[str, Units],
                     tables: dict[str, tuple[Units, Units]] | None = None) -> U:
    """Units of an expression tree; raises :class:`UnitsError` when they do not combine.

    ``tables`` maps table names to (x units, value units) for ``lookup()``.
    """
    return _Infer(names, tables)(tree)


# ------------------------------------------------------------------------------------- model


@dataclass
class Report:
    """Result of :func:`check_model`: the issues found and how many equations were checked."""

    issues: list[Issue]
    equations: int
    declared: int  # unit strings read


class _ModelUnits:
    """The declared units of one model's names, read once, with the issues found so far."""

    def __init__(self, model: Model) -> None:
        d = model.directory
        self.model = model
        self.sfile, self.pfile = str(d / "structure.yaml"), str(d / "parameters.yaml")
        self.ofile, self.gfile, self.cfile = str(d / "observed.yaml"), str(d / "goals.yaml"), str(d / "calibration.yaml")
        self.issues: list[Issue] = []
        self.names: dict[str, Units] = {}
        self.tables: dict[str, tuple[Units, Units]] = {}
        self.declared = 0
        self.equations = 0
        self.calls = {f.owner: f for f in model.stock_functions}

    def read(self, text: str, file: str, path: str) -> Units | None:
        """Parsed units (None, and an issue, when the string does not parse)."""
        self.declared += 1
        try:
            return parse_units(text)
        except UnitsError as exc:
            self.issues.append(Issue(file, path, str(exc)))
            return None

    def read_declared(self) -> None:
        """The units of every parameter, fact, variable, series and table."""
        model = self.model
        for p in model.params.values():
            u = self.read(p.units, self.pfile, f"{'levers' if p.is_lever else 'parameters'}.{p.name}.units")
            if u is not None:
                self.names[p.name] = u
        for f in model.facts.values():
            u = self.read(f.units, self.ofile, f"facts.{f.name}.units")
            if u is not None:
                self.names[f.name] = u
        sections = (("stocks", model.stocks), ("flows", model.flows), ("auxiliaries", model.aux),
                    ("annual", model.annual), ("series", model.series))
        for section, group in sections:
            for v in group.values():
                u = self.read(v.units, self.sfile, f"{section}.{v.name}.units")
                if u is not None:
                    self.names[v.name] = u
        for t in model.tables.values():
            xu = self.read(t.x_units, self.sfile, f"tables.{t.name}.x_units")
            yu = self.read(t.units, self.sfile, f"tables.{t.name}.units")
            if xu is not None and yu is not None:
                self.tables[t.name] = (xu, yu)

    def check(self, var: Variable, want: Units | None, path: str, file: str | None = None) -> None:
        """The units of ``var``'s equation against ``want`` (its declared units)."""
        file = file or self.sfile
        if var.hidden:  # structure of a smooth/delay call: checked through the call's arguments
            return
        self.equations += 1
        tree = var.expr.tree
        if var.name in self.calls:  # the equation as written, with its smooth/delay calls
            tree = ast.parse(var.expr.text, mode="eval").body
        try:
            got = expression_units(tree, self.names, self.tables)
        except UnitsError as exc:
            self.issues.append(Issue(file, path, f"{exc} in {ast.unparse(tree)!r}"))
            return
        if var.table is not None and want is not None:
            if not same(got, DMNL):
                self.issues.append(Issue(self.sfile, path, f"graphical-function input {var.expr.text!r} has units "
                                                           f"{format_units(got)}, expected dmnl"))
            return
        if want is not None and not same(got, want):
            what = "cost" if var.layer == "cost" else "declared"
            self.issues.append(Issue(file, path, f"equation {var.expr.text!r} has units {format_units(got)}, "
                                                 f"{what} {format_units(want)}"))

    def check_equations(self) -> None:
        """Every stock's initial value and flows, every flow, auxiliary and annual output."""
        model, names = self.model, self.names
        for s in model.stocks.values():
            self.check(s, names.get(s.name), f"stocks.{s.name}.initial")
            if s.name not in names:
                continue
            want = multiply(names[s.name], PER_YEAR)
            for k in ("inflows", "outflows"):
                for f in getattr(s, k):
                    if f in names and names[f] != want:
                        self.issues.append(Issue(self.sfile, f"flows.{f}.units",
                                                 f"{format_units(names[f])}, but it is one of the {k} of stock "
                                                 f"{s.name} ({format_units(names[s.name])}): expected "
                                                 f"{format_units(want)}"))
        for section, group in (("flows", model.flows), ("auxiliaries", model.aux), ("annual", model.annual)):
            for v in group.values():
                if v.layer == "cost":  # a lever's cost equation (parameters.yaml): must be CNY100M/year
                    self.check(v, names.get(v.name), f"levers.{v.name[len('cost_'):]}.cost", file=self.pfile)
                else:
                    self.check(v, names.get(v.name), f"{section}.{v.name}.equation")

    def check_goals_and_targets(self) -> None:
        """Goal units equal their variable's; calibration target values have their variable's units."""
        names = self.names
        for g in self.model.goals.values():
            gu = self.read(g.units, self.gfile, f"goals.{g.name}.units")
            vu = names.get(g.variable)
            if gu is not None and vu is not None and gu != vu:
                self.issues.append(Issue(self.gfile, f"goals.{g.name}.units", f"{format_units(gu)}, but {g.variable} "
                                                                              f"is {format_units(vu)}"))
        for t in self.model.calibration.targets:
            want_t = names.get(t.variable) if t.variable else (
                multiply(names[t.inflows_of], PER_YEAR) if t.inflows_of in names else None)
            have = names.get(t.value_name)
            if want_t is not None and have is not None and want_t != have:
                what = t.variable or f"inflows of {t.inflows_of}"
                self.issues.append(Issue(self.cfile, f"targets.{t.name}", f"value {t.value_name} is "
                                                                          f"{format_units(have)}, but {what} is "
                                                                          f"{format_units(want_t)}"))


PER_YEAR: Units = ((TIME_UNIT, Fraction(-1)),)  # units of a stock's flows: the stock's per year


def check_model(model: Model) -> Report:
    """Check every unit string and every equation of ``model``."""
    mu = _ModelUnits(model)
    mu.read_declared()
    mu.check_equations()
    mu.check_goals_and_targets()
    return Report(mu.issues, mu.equations, mu.declared)


def literals(model: Model) -> list[Issue]:
    """Numeric literals other than 0 and 1 in equations (every number belongs in parameters.yaml)."""
    sfile = str(model.directory / "structure.yaml")
    out = []
    for section, group, key in (("stocks", model.stocks, "initial"), ("flows", model.flows, "equation"),
                                ("auxiliaries", model.aux, "equation"), ("annual", model.annual, "equation")):
        for v in group.values():
            bad = [x for x in v.expr.literals if x not in (0.0, 1.0)]
            if bad:
                shown = ", ".join(f"{x:g}" for x in bad)
                out.append(Issue(sfile, f"{section}.{v.name}.{key}",
                                 f"number {shown} in {v.expr.text!r}: give it a name in parameters.yaml"))
    return out
