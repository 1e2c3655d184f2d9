"""Dependency analysis of a model for :mod:`compiler`: which equations run when, and in which order.

:func:`plan` classifies the auxiliaries and flows of a :class:`~sdsim.model.Model` and orders them:

* *computed*: flows and auxiliaries evaluated every step (not ``initial()``, not ``delay_fixed`` outputs);
* *frozen*: auxiliaries of the form ``initial(x)``, computed once at the start;
* *delays*: ``delay_fixed`` outputs (state held in ring buffers);
* *static*: computed equations that depend on constants, frozen values and other static ones only
  (no ``time``, no time function): computed once per batch in ``build``;
* *need*: what the rates (and the ``delay_fixed`` inputs) depend on, the only part evaluated by ``rates``;
* the order of the initial values (stocks, frozen auxiliaries, ``delay_fixed`` initial values) and the
  subtrees of the dynamic equations that depend on constants only (hoisted into ``build``).

Every order is deterministic (sorted before the topological sort), so the generated code is the same
in every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from . import expressions as ex
from .errors import ModelError
from .model import Model, Variable


def order(nodes: dict[str, set[str]], what: str, file: str) -> list[str]:
    """Topological order of ``nodes`` (name -> dependencies among nodes); cycles are errors."""
    try:  # sorted dependencies: the same generated code in every process (set order depends on the hash seed)
        return list(TopologicalSorter({n: sorted(nodes[n]) for n in sorted(nodes)}).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ModelError(f"{what} form a cycle: {cycle}", file) from None


@dataclass
class Plan:
    """The classified, ordered equations of one model (see the module docstring)."""

    model: Model
    sfile: str  # structure.yaml, for error messages
    stocks: list[str]
    aux_all: dict[str, Variable]
    frozen: list[str]  # initial(x) auxiliaries
    delays: dict[str, Variable]  # delay_fixed outputs
    computed: dict[str, Variable]  # flows, then the other auxiliaries
    levers: set[str]
    series: set[str]
    consts: set[str]  # constants (parameters that are not levers) and facts
    deps: dict[str, set[str]]  # computed -> the computed equations it uses
    order: list[str]  # computed, in dependency order
    static: set[str]  # computed once per batch (constants only)
    rates: list[str]  # flows, then auxiliaries recorded as annual totals
    rec_aux: list[str]  # auxiliaries recorded at year ends
    need: set[str]  # computed equations evaluated by rates()
    init_order: list[str]  # initial values: "stock:<name>", frozen, delay_fixed outputs and what they need
    hoisted: dict[str, tuple[str, Any]]  # constant subtrees of the dynamic equations, computed in build
    dyn_expr: dict[str, ex.Expr]  # dynamic equations with the hoisted subtrees replaced
    held: bool  # some dynamic equation uses step() or pulse(), read at the step's start

    @property
    def stock_index(self) -> dict[str, int]:
        """Row of each stock in ``S`` and ``D``."""
        return {s: i for i, s in enumerate(self.stocks)}

    @property
    def rate_index(self) -> dict[str, int]:
        """Row of each rate in ``F``."""
        return {r: i for i, r in enumerate(self.rates)}


def _static(computed: dict[str, Variable], order: list[str], constant: set[str]) -> set[str]:
    """The computed equations (in ``order``) that use no time and only ``constant`` or other static names."""
    static: set[str] = set()
    for n in order:
        v = computed[n]
        uses_time = bool(v.expr.names & {"time"}) or bool(v.expr.functions & {"step", "ramp", "pulse"})
        external = v.expr.names - constant - static
        if not uses_time and not external:
            static.add(n)
    return static


def closure(start: Iterable[str], deps: Mapping[str, Iterable[str]]) -> set[str]:
    """``start`` and everything it depends on through ``deps``."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(deps.get(n, ()))
    return seen


def _init_order(model: Model, computed: dict[str, Variable], frozen: list[str], delays: dict[str, Variable],
                sfile: str) -> list[str]:
    """Order of the initial values: the stocks' (``stock:<name>``), the frozen auxiliaries', the delay_fixed
    initial values', and only the equations these need."""
    stocks = list(model.stocks)

    def init_deps(expr: ex.Expr) -> set[str]:
        out = set()
        for name in expr.names:
            if name in model.stocks:
                out.add(f"stock:{name}")
            elif name in computed or name in frozen or name in delays:
                out.add(name)
        return out

    init_nodes: dict[str, set[str]] = {}
    for s in stocks:
        init_nodes[f"stock:{s}"] = init_deps(model.stocks[s].expr)
    for n, v in computed.items():
        init_nodes[n] = init_deps(v.expr)
    for n in frozen:
        init_nodes[n] = init_deps(model.aux[n].expr)  # what initial(x) needs, in dependency order
    for n, v in delays.items():
        init_nodes[n] = init_deps(v.fixed_delay[1])  # type: ignore[index]
    # only what the stocks' initial values, the frozen auxiliaries and the delay_fixed initial values need
    wanted = closure([f"stock:{s}" for s in stocks] + frozen + list(delays), init_nodes)
    return order({n: init_nodes[n] & wanted for n in wanted}, "initial values", sfile)


def plan(model: Model) -> Plan:
    """Classify and order the equations of ``model`` for code generation."""
    sfile = str(model.directory / "structure.yaml")
    aux_all = dict(model.aux)
    frozen = [n for n, v in aux_all.items() if v.expr.is_initial]
    delays = {n: v for n, v in aux_all.items() if v.fixed_delay is not None}  # delay_fixed outputs: state
    computed = {**model.flows, **{n: v for n, v in aux_all.items() if n not in frozen and n not in delays}}
    levers = set(model.levers)
    consts = set(model.params) - levers | set(model.facts)

    # --- dynamic graph: flows and auxiliaries depend on each other; stocks etc. are sources
    deps = {n: (v.expr.names & set(computed)) for n, v in computed.items()}
    dyn_order = order(deps, "auxiliaries and flows", sfile)
    static = _static(computed, dyn_order, consts | set(frozen))
    rates = list(model.flows) + [n for n, v in aux_all.items() if v.annual_total]

    # the subset needed each step: ancestors of the rates and of the delay_fixed inputs
    roots = [r for r in rates if r in computed]
    for v in delays.values():
        roots.extend(v.expr.names & set(computed))
    need = closure(roots, deps)

    # subtrees of the dynamic equations that depend on constants only are computed once, in build
    hoisted: dict[str, tuple[str, Any]] = {}
    constant = consts | set(frozen) | static
    dyn_expr = {n: ex.hoist(computed[n].expr, constant, hoisted) for n in dyn_order if n not in static}
    held_fns = set(ex.HELD_TIME_FUNCTIONS)
    held = any(computed[n].expr.functions & held_fns for n in dyn_order if n not in static) \
        or any(v.expr.functions & held_fns for v in delays.values())

    return Plan(
        model=model, sfile=sfile, stocks=list(model.stocks), aux_all=aux_all, frozen=frozen, delays=delays,
        computed=computed, levers=levers, series=set(model.series), consts=consts, deps=deps, order=dyn_order,
        static=static, rates=rates, rec_aux=[n for n, v in aux_all.items() if not v.annual_total], need=need,
        init_order=_init_order(model, computed, frozen, delays, sfile), hoisted=hoisted, dyn_expr=dyn_expr,
        held=held,
    )
