"""Feedback loops found from the equation graph, with their polarity.

The graph has a node per stock, flow and auxiliary (``initial()`` values and parameters are
constants, not nodes). An edge u -> v means u appears in v's equation, or u is a flow of stock v
(+ for an inflow, - for an outflow). Every elementary cycle of this graph is a feedback loop
(each passes through a stock: the compiler rejects algebraic loops). Cycles are enumerated with
networkx (Johnson's algorithm).

Link polarity is the sign of the partial derivative of v's equation with respect to u, taken
numerically (central differences) at sampled model states: the year ends of a baseline run.
A link whose derivative is zero at every baseline state (a loop switched off by a zero lever,
say) takes its sign from a second set of states, where it is active. The sign of a link is
determinable when all non-zero signs agree; a loop's polarity is R (product +), B (product -),
'?' (a link's sign changes between states) or '0' (a link is inactive at every state sampled).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from . import expressions as ex
from .compiler import Compiled, _namespace
from .engine import Run, TimeGrid, series_values

REL_STEP = 1e-6  # relative perturbation of the input for the central difference
ZERO = 1e-10  # a relative change of the output below this counts as no effect


@dataclass
class Loop:
    """A feedback loop: ``nodes`` in causal order (the last links back to the first)."""

    nodes: list[str]
    signs: list[int | None]  # sign of the link nodes[i] -> nodes[i+1]: +1, -1, 0, None (changes sign)
    name: str = ""
    declared: Any = None  # the checks.yaml entry it matches, if any

    @property
    def polarity(self) -> str:
        """'R' reinforcing, 'B' balancing, '?' undetermined, '0' inactive at the states sampled."""
        if any(s is None for s in self.signs):
            return "?"
        if any(s == 0 for s in self.signs):
            return "0"
        return "R" if int(np.prod([s for s in self.signs if s is not None])) > 0 else "B"

    def path(self, sep: str = " → ") -> str:
        """``a → b → c → a`` with link signs."""
        parts = []
        for n, s in zip(self.nodes, self.signs, strict=True):
            mark = {1: "+", -1: "−", 0: "0", None: "?"}[s]
            parts.append(f"{n} ({mark})")
        return sep.join([*parts, self.nodes[0]])


def graph(cm: Compiled) -> nx.DiGraph:
    """Dependency graph over stocks, flows and (non-initial) auxiliaries."""
    m = cm.model
    frozen = {n for n, v in m.aux.items() if v.expr.is_initial}
    nodes = [*m.stocks, *m.flows, *(n for n in m.aux if n not in frozen)]
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    known = set(nodes)
    for name in nodes:
        if name in m.stocks:
            for f in m.stocks[name].inflows:
                g.add_edge(f, name, kind="inflow")
            for f in m.stocks[name].outflows:
                g.add_edge(f, name, kind="outflow")
        else:
            for u in m.variable(name).expr.names & known:
                g.add_edge(u, name, kind="equation")
    return g


def cycles(cm: Compiled) -> list[list[str]]:
    """Elementary cycles, each rotated to start at its first stock (model order), sorted by length.

    The internal adjustment loops of a smooth/delay call (cycles through its hidden structure only)
    are left out: they belong to the builtin, not to the model's feedback structure.
    """
    m = cm.model
    order = {s: i for i, s in enumerate(m.stocks)}
    hidden = {n for n, v in m.variables.items() if v.hidden}
    out = []
    for c in nx.simple_cycles(graph(cm)):
        if set(c) <= hidden:
            continue
        stocks = [n for n in c if n in order]
        first = min(stocks, key=order.__getitem__) if stocks else min(c)  # a fixed start: same text every run
        k = c.index(first)
        out.append(c[k:] + c[:k])
    return sorted(out, key=lambda c: (len(c), order.get(c[0], 0), c))


# ------------------------------------------------------------------------------------- states


def _evaluator(var: Any, cm: Compiled) -> Callable[[dict[str, Any]], Any]:
    """``f(E)`` computing ``var``'s equation from the name -> value mapping ``E``.

    A ``delay_fixed`` output is evaluated as its input (the sign of a pure delay's link).
    """
    expr = ex.inner(var.expr)
    rename = {n: f"E[{n!r}]" for n in expr.names}
    rename["time"] = "E['time']"
    for t in expr.tables:
        if cm.model.tables[t].y_scale_range is not None:
            rename[ex.table_scale_name(t)] = f"E[{ex.table_scale_name(t)!r}]"
    src = ex.to_source(expr, rename)
    ns = _namespace(cm.model, cm.table_y or {})
    if var.table is not None:
        ns["_x"], ns["_y"] = (np.asarray(a, dtype=float) for a in var.table)
        src = f"_interp({src}, _x, _y)"
    code = compile(ast.parse(f"lambda E: {src}", mode="eval"), f"<{var.name}>", "eval")
    return eval(code, ns)  # noqa: S307 - source generated from a whitelisted expression tree


@dataclass
class States:
    """Model states at sampled times: name -> (n,) values, one mapping per time."""

    envs: list[dict[str, Any]] = field(default_factory=list)


def states(cm: Compiled, params: dict[str, Any], levers: dict[str, np.ndarray], grid: TimeGrid, run: Run) -> States:
    """Every variable's value at each recorded year end of ``run``, recomputed from its stocks."""
    m = cm.model
    frozen = [n for n, v in m.aux.items() if v.expr.is_initial]
    delays = [n for n, v in m.aux.items() if v.fixed_delay is not None]  # state: read from the run
    computed = {**m.flows, **{n: v for n, v in m.aux.items() if n not in frozen and n not in delays}}
    order = _topological(computed)
    fns = {n: _evaluator(computed[n], cm) for n in order}
    sr_step, _ = series_values(cm, grid, levers)
    out = States()
    for i, year in enumerate(run.years):
        k = i * grid.steps_per_year
        env: dict[str, Any] = dict(params)
        env["time"] = float(year)
        for name, sched in levers.items():
            env[name] = sched[k]
        for name, sched in sr_step.items():
            env[name] = sched[k]
        for s in m.stocks:
            env[s] = run.get(s)[i]
        for n in frozen:
            env[n] = run.get(n)[0]
        for n in delays:
            env[n] = run.get(n)[i]
        for n in order:
            env[n] = fns[n](env)
        out.envs.append(env)
    return out


def _topological(computed: dict[str, Any]) -> list[str]:
    from graphlib import TopologicalSorter

    return list(TopologicalSorter({n: v.expr.names & set(computed) for n, v in computed.items()}).static_order())


def _signs(fn: Callable, env: dict[str, Any], u: str) -> np.ndarray:
    """Signs (+1, -1, 0) of d fn / d u at ``env`` (one per run)."""
    x = np.asarray(env[u], dtype=float)
    h = REL_STEP * np.maximum(np.abs(x), 1e-6)
    e = dict(env)
    e[u] = x + h
    up = np.asarray(fn(e), dtype=float)
    e[u] = x - h
    dn = np.asarray(fn(e), dtype=float)
    base = np.asarray(fn(env), dtype=float)
    change = up - dn
    scale = np.maximum(np.maximum(np.abs(base), np.abs(up)), np.abs(dn))
    sign = np.atleast_1d(np.sign(change))
    change, scale = np.atleast_1d(change), np.atleast_1d(scale)
    sign[np.abs(change) <= ZERO * np.maximum(scale, 1e-300)] = 0
    sign[~np.isfinite(change)] = 0
    return np.atleast_1d(sign)


def link_signs(cm: Compiled, samples: Sequence[States], fallback: Sequence[States] = ()) -> dict[tuple[str, str], int | None]:
    """Sign of every link of :func:`graph` over the sampled states (see the module docstring)."""
    m = cm.model
    g = graph(cm)
    fns: dict[str, Callable] = {}
    out: dict[tuple[str, str], int | None] = {}
    for u, v, data in g.edges(data=True):
        if data["kind"] != "equation":
            out[(u, v)] = 1 if data["kind"] == "inflow" else -1
            continue
        if v not in fns:
            fns[v] = _evaluator(m.variable(v), cm)
        out[(u, v)] = _combine(fns[v], u, samples)
        if out[(u, v)] == 0 and fallback:
            out[(u, v)] = _combine(fns[v], u, fallback)
    return out


def _combine(fn: Callable, u: str, samples: Sequence[States]) -> int | None:
    seen: set[int] = set()
    for st in samples:
        for env in st.envs:
            seen |= {int(s) for s in _signs(fn, env, u)}
    nonzero = seen - {0}
    if len(nonzero) > 1:
        return None
    return nonzero.pop() if nonzero else 0


def find_loops(cm: Compiled, samples: Sequence[States], fallback: Sequence[States] = (),
               declared: Sequence[Any] = ()) -> list[Loop]:
    """All loops with link signs; loops matching a declared loop (checks.yaml) take its name."""
    signs = link_signs(cm, samples, fallback)
    loops = []
    for c in cycles(cm):
        links = [signs[(c[i], c[(i + 1) % len(c)])] for i in range(len(c))]
        loops.append(Loop(c, links))
    name_loops(loops, declared)
    return loops


def _is_rotation(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b) or not a:
        return False
    k = a.index(b[0]) if b[0] in a else -1
    return k >= 0 and a[k:] + a[:k] == b


def name_loops(loops: list[Loop], declared: Sequence[Any]) -> None:
    """Give each declared loop's name to the loop it describes (exact cycle, or shortest loop through)."""
    for d in declared:
        if d.cycle is not None:
            hit = [lp for lp in loops if _is_rotation(lp.nodes, d.cycle)]
        else:
            hit = sorted((lp for lp in loops if set(d.through) <= set(lp.nodes)), key=lambda lp: len(lp.nodes))
        if hit:
            hit[0].name = d.name
            hit[0].declared = d
