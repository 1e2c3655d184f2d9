"""SMOOTH and DELAY builtins: each call becomes hidden stocks and flows named after its owner.

An equation may call ``smooth``, ``smooth3``, ``delay1``, ``delay3`` (Vensim semantics, optional
third argument = initial value, default: the input's value at t0, i.e. equilibrium) and
``delay_fixed(input, delay_time, initial)``. The loader (:func:`expand`) replaces each call by a
name and adds the structure behind it to the model, so the compiler, mass balance, loop finder,
``describe`` and the XMILE export see ordinary stocks and flows. Names, for a call in the
equation of ``owner`` (``<base>`` = ``owner__smooth`` for its first smooth() call,
``owner__smooth_2`` for the second, and so on):

* ``smooth(x, T[, x0])`` -> stock ``<base>`` (units of x), initial x0, inflow ``<base>_change``
  = (x − ``<base>``) / T; the call's value is the stock;
* ``smooth3(x, T[, x0])`` -> stocks ``<base>_s1..s3``, each adjusting to the previous one over
  T / 3 (flows ``<base>_change1..3``); the value is ``<base>_s3``;
* ``delay1(x, T[, x0])`` -> stock ``<base>`` (units of x × year, the material in transit) with
  initial x0 × T, inflow ``<base>_in`` = x, outflow ``<base>_out`` = ``<base>`` / T; the value is
  the outflow;
* ``delay3(x, T[, x0])`` -> stocks ``<base>_s1..s3`` (initial x0 × T / 3 each), flows
  ``<base>_in`` = x, ``<base>_out1``, ``<base>_out2``, ``<base>_out`` (stage k's content / (T / 3));
  the value is ``<base>_out``;
* ``delay_fixed(x, T, x0)`` -> an auxiliary ``<base>`` holding x of T years ago (x0 before t0 + T),
  kept in a per-run ring buffer by the compiled model (see :mod:`compiler`); T must be a constant
  expression and a whole number of steps. Its equation is x (for the loop finder: a link x -> base).

The delay time T of smooth/delay1/delay3 is evaluated at every step (it may vary), as in Vensim.
Because the call's value is a stock (or a function of stocks, or a buffer), an auxiliary may depend
on a smooth or delay of something that depends on that auxiliary: not an algebraic loop.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from . import expressions as ex
from . import units as un
from .errors import ModelError
from .model import Model, Variable


@dataclass
class StockFunction:
    """One smooth/delay call: where it is, what it compiled to."""

    owner: str  # the variable whose equation holds the call
    path: str  # key path of that equation in structure.yaml
    fn: str  # smooth | smooth3 | delay1 | delay3 | delay_fixed
    base: str  # base of the hidden names
    output: str  # the name that replaces the call
    input: ex.Expr
    delay: ex.Expr
    initial: ex.Expr | None  # None: the input's value at t0
    stocks: list[str] = field(default_factory=list)
    flows: list[str] = field(default_factory=list)
    aux: list[str] = field(default_factory=list)


def _parse(text: str) -> ex.Expr:
    """An Expr for generated text (built from checked subtrees; its literals are not the user's)."""
    e = ex.parse(text)
    e.literals = []
    return e


class _Expander:
    def __init__(self, model: Model, sfile: str) -> None:
        self.m = model
        self.sfile = sfile
        self.found: list[StockFunction] = []
        self.taken = set(model.variables) | set(model.params) | set(model.facts) | set(model.series) \
            | set(model.tables)
        self.units: dict[str, un.Units] = {}
        for group in (model.params, model.facts, model.stocks, model.flows, model.aux, model.series):
            for name, v in group.items():
                try:
                    self.units[name] = un.parse_units(v.units)
                except un.UnitsError:
                    pass
        self.tables: dict[str, tuple[un.Units, un.Units]] = {}
        for name, t in model.tables.items():
            try:
                self.tables[name] = (un.parse_units(t.x_units), un.parse_units(t.units))
            except un.UnitsError:
                pass

    def _units_of(self, tree: ast.AST, fallback: str) -> un.Units | None:
        try:
            u = un.expression_units(tree, self.units, self.tables)
        except un.UnitsError:
            u = None
        if u is None or isinstance(u, un._Any):
            try:
                return un.parse_units(fallback)
            except un.UnitsError:
                return None
        return u

    def _sector(self, owner: Variable) -> str:
        """Sector of the stock the owner (a flow, or an auxiliary used by a flow) belongs to."""
        users = [owner.name] + [f for f, v in self.m.flows.items() if owner.name in v.expr.names]
        for f in users:
            for st in self.m.stocks.values():
                if f in st.inflows or f in st.outflows:
                    return st.sector
        return ""

    def expand(self, owner: Variable, path: str) -> None:
        counts: dict[str, int] = {}
        me = self

        class _T(ast.NodeTransformer):
            def visit_Call(self, node: ast.Call) -> Any:
                self.generic_visit(node)
                fn = node.func.id  # type: ignore[attr-defined]
                if fn not in ex.STOCK_FUNCTIONS:
                    return node
                counts[fn] = counts.get(fn, 0) + 1
                base = f"{owner.name}__{fn}" + ("" if counts[fn] == 1 else f"_{counts[fn]}")
                out = me.add(owner, path, fn, base, node.args)
                return ast.copy_location(ast.Name(id=out, ctx=ast.Load()), node)

        tree = _T().visit(ast.Expression(body=ast.parse(ast.unparse(owner.expr.tree), mode="eval").body)).body
        new = ex.from_tree(tree, owner.expr.text)
        new.literals = list(owner.expr.literals)
        owner.expr = new

    def _name(self, name: str, path: str) -> str:
        if name in self.taken:
            raise ModelError(f"the hidden name '{name}' of a smooth/delay call is already a model name; "
                             "rename that element", self.sfile, path)
        self.taken.add(name)
        return name

    def add(self, owner: Variable, path: str, fn: str, base: str, args: list[ast.expr]) -> str:
        m = self.m
        x, T = (ast.unparse(a) for a in args[:2])
        x0 = ast.unparse(args[2]) if len(args) == 3 else None
        init = x0 if x0 is not None else x
        u_in = self._units_of(args[0], owner.units)
        year: un.Units = ((un.TIME_UNIT, un.Fraction(1)),)
        per_year: un.Units = ((un.TIME_UNIT, un.Fraction(-1)),)

        def txt(u: un.Units | None) -> str:
            return un.format_units(u) if u is not None else owner.units

        rec = StockFunction(owner.name, path, fn, base, base, ex.from_tree(args[0]), ex.from_tree(args[1]),
                            ex.from_tree(args[2]) if x0 is not None else None)
        note = f"hidden: {fn}() in the equation of {owner.name}"
        sector = self._sector(owner)

        def stock(name: str, units: un.Units | None, initial: str, inflows: list[str], outflows: list[str]) -> None:
            name = self._name(name, path)
            m.stocks[name] = Variable(name=name, kind="stock", units=txt(units), expr=_parse(initial), note=note,
                                      sector=sector, inflows=inflows, outflows=outflows, hidden=owner.name)
            rec.stocks.append(name)
            if units is not None:
                self.units[name] = units

        def flow(name: str, units: un.Units | None, equation: str) -> None:
            name = self._name(name, path)
            m.flows[name] = Variable(name=name, kind="flow", units=txt(units), expr=_parse(equation), note=note,
                                     hidden=owner.name)
            rec.flows.append(name)
            if units is not None:
                self.units[name] = units

        u_rate = un.multiply(u_in, per_year) if u_in is not None else None
        u_mass = un.multiply(u_in, year) if u_in is not None else None
        if fn == "smooth":
            flow(f"{base}_change", u_rate, f"(({x}) - {base}) / ({T})")
            stock(base, u_in, init, [f"{base}_change"], [])
        elif fn == "smooth3":
            prev = f"({x})"
            for k in (1, 2, 3):
                s = f"{base}_s{k}"
                flow(f"{base}_change{k}", u_rate, f"({prev} - {s}) / (({T}) / 3)")
                stock(s, u_in, init, [f"{base}_change{k}"], [])
                prev = s
            rec.output = f"{base}_s3"
        elif fn == "delay1":
            flow(f"{base}_in", u_in, x)
            flow(f"{base}_out", u_in, f"{base} / ({T})")
            stock(base, u_mass, f"({init}) * ({T})", [f"{base}_in"], [f"{base}_out"])
            rec.output = f"{base}_out"
        elif fn == "delay3":
            flow(f"{base}_in", u_in, x)
            outs = [f"{base}_out1", f"{base}_out2", f"{base}_out"]
            for k, o in enumerate(outs, 1):
                flow(o, u_in, f"{base}_s{k} / (({T}) / 3)")
            ins = [f"{base}_in", *outs[:2]]
            for k in (1, 2, 3):
                stock(f"{base}_s{k}", u_mass, f"({init}) * ({T}) / 3", [ins[k - 1]], [outs[k - 1]])
            rec.output = f"{base}_out"
        else:  # delay_fixed
            consts = set(m.params) | set(m.facts)
            if not rec.delay.names <= consts or rec.delay.functions:
                raise ModelError(f"delay_fixed() delay time {T!r} must be a constant expression (parameters and "
                                 "numbers only)", self.sfile, path)
            name = self._name(base, path)
            var = Variable(name=name, kind="aux", units=txt(u_in), expr=_parse(x), note=note, hidden=owner.name)
            var.fixed_delay = (rec.delay, rec.initial)  # type: ignore[assignment]
            m.aux[name] = var
            rec.aux.append(name)
            if u_in is not None:
                self.units[name] = u_in
        self.found.append(rec)
        return rec.output


def expand(model: Model) -> None:
    """Replace every smooth/delay call in ``model``'s flows and auxiliaries by hidden structure (in place)."""
    sfile = str(model.directory / "structure.yaml")
    xp = _Expander(model, sfile)
    for section, group in (("flows", model.flows), ("auxiliaries", model.aux)):
        for name, var in list(group.items()):
            if not var.expr.functions & set(ex.STOCK_FUNCTIONS):
                continue
            path = f"{section}.{name}.equation"
            if var.expr.is_initial:
                raise ModelError("smooth/delay functions cannot be used inside initial()", sfile, path)
            xp.expand(var, path)
    model.stock_functions = xp.found
