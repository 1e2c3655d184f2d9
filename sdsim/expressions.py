"""Equation text -> checked AST -> numpy source code.

Equations are ordinary infix text (``carriers * closure_rate``). They are parsed with
:mod:`ast`, checked against a whitelist of node types, names and functions, and turned into a
line of Python source over numpy arrays. User text is never passed to eval/exec: only the code
generated here from the checked tree is compiled.

Allowed: numbers, names, ``+ - * / **``, unary minus, comparisons (``< <= > >= == !=``, not
chained), and the functions in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import ast
import copy
import math
from dataclasses import dataclass, field
from typing import NoReturn

from .errors import ModelError

# name -> (min args, max args, description). ``initial`` is handled by the model compiler.
FUNCTIONS: dict[str, tuple[int, int, str]] = {
    "min": (2, 99, "elementwise minimum"),
    "max": (2, 99, "elementwise maximum"),
    "clip": (3, 3, "clip(x, lo, hi)"),
    "abs": (1, 1, "absolute value"),
    "exp": (1, 1, "e ** x"),
    "log": (1, 1, "natural logarithm"),
    "sqrt": (1, 1, "square root"),
    "if_then_else": (3, 3, "if_then_else(condition, value if true, value if false)"),
    "step": (2, 2, "step(height, start): height once time >= start, else 0"),
    "ramp": (3, 3, "ramp(slope, start, end): slope * (time - start) between start and end"),
    "pulse": (2, 2, "pulse(start, width): 1 while start <= time < start + width, else 0"),
    "initial": (1, 1, "initial(x): the value of x at the initial time, held constant"),
    "lookup": (2, 2, "lookup(table, x): the graphical function `table` (tables: in structure.yaml) at x"),
    "smooth": (2, 3, "smooth(input, delay_time[, initial]): first-order exponential smooth (Vensim SMOOTH)"),
    "smooth3": (2, 3, "smooth3(input, delay_time[, initial]): third-order exponential smooth (Vensim SMOOTH3)"),
    "delay1": (2, 3, "delay1(input, delay_time[, initial]): first-order material delay (Vensim DELAY1)"),
    "delay3": (2, 3, "delay3(input, delay_time[, initial]): third-order material delay (Vensim DELAY3)"),
    "delay_fixed": (3, 3, "delay_fixed(input, delay_time, initial): pipeline delay (Vensim DELAY FIXED)"),
}

#: Functions that create state: the model loader replaces each call by hidden stocks (or, for
#: ``delay_fixed``, a per-run ring buffer) named after the variable whose equation holds the call.
STOCK_FUNCTIONS = ("smooth", "smooth3", "delay1", "delay3", "delay_fixed")
#: Functions of time whose breaks lie on the step grid: held at the step's start in every RK4 stage.
HELD_TIME_FUNCTIONS = ("step", "pulse")

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}

#: Names every equation may use besides model names.
BUILTIN_NAMES = ("time",)


@dataclass
class Expr:
    """A parsed, checked equation."""

    text: str
    tree: ast.expr
    names: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    literals: list[float] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)  # graphical functions called with lookup()

    @property
    def is_initial(self) -> bool:
        """True when the whole equation is ``initial(...)``."""
        return (
            isinstance(self.tree, ast.Call)
            and isinstance(self.tree.func, ast.Name)
            and self.tree.func.id == "initial"
        )


def parse(text: str | int | float, where: str = "", file: str | None = None) -> Expr:
    """Parse and check an equation; raise :class:`ModelError` naming ``where`` on failure."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ModelError(f"expected an equation (text or number), got {text!r}", file, where)
    src = str(text).strip()
    if not src:
        raise ModelError("empty equation", file, where)
    if len(src) > MAX_EQUATION_CHARS:
        raise ModelError(f"equation of {len(src):,} characters, more than {MAX_EQUATION_CHARS:,}: split it into "
                         f"auxiliaries ({_short(src)})", file, where)
    try:
        module = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        raise ModelError(f"cannot parse equation {_short(src)}: {exc.msg}", file, where) from None
    except (RecursionError, MemoryError):
        raise ModelError(f"equation nested too deeply ({_short(src)})", file, where) from None
    expr = Expr(text=src, tree=module.body)
    try:
        _check(module.body, expr, src, where, file)
        _check_constants(module.body, src, where, file)
    except RecursionError:
        raise ModelError(f"equation nested too deeply ({_short(src)})", file, where) from None
    return expr


MAX_EQUATION_CHARS = 4000  # an equation longer than this is refused (the longest in the Yubei model is ~200)


def _short(src: str) -> str:
    return repr(src) if len(src) <= 80 else repr(src[:70]) + f"... ({len(src):,} characters)"


def _const_value(node: ast.AST) -> float | None:
    """The value of a name-free arithmetic subtree (Python floats), None when it holds a name or a call."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _const_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp):
        a, b = _const_value(node.left), _const_value(node.right)
        if a is None or b is None:
            return None
        op = type(node.op)
        if op is ast.Add:
            return a + b
        if op is ast.Sub:
            return a - b
        if op is ast.Mult:
            return a * b
        if op is ast.Div:
            return a / b
        if op is ast.Pow:
            v = a**b
            return v if isinstance(v, float) else float("nan")  # a negative number to a fractional power
    return None


def _check_constants(node: ast.AST, src: str, where: str, file: str | None) -> None:
    """Constant parts of an equation (no names) must be finite numbers: ``k / (2 - 2)``, ``10 ** 1000`` are errors."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp | ast.UnaryOp | ast.Constant):
            part = ast.get_source_segment(src, sub) or "?"
            try:
                v = _const_value(sub)
            except ZeroDivisionError:
                raise ModelError(f"the constant part {_short(part)} divides by zero in equation {_short(src)}",
                                 file, where) from None
            except OverflowError:
                raise ModelError(f"the constant part {_short(part)} overflows in equation {_short(src)}",
                                 file, where) from None
            if v is not None and not math.isfinite(v):
                raise ModelError(f"the constant part {_short(part)} is not a finite number in equation {_short(src)}",
                                 file, where) from None
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Div):
            try:
                d = _const_value(sub.right)
            except (ZeroDivisionError, OverflowError):
                d = None
            if d == 0:
                raise ModelError(f"division by a constant zero ({_short(ast.get_source_segment(src, sub.right) or '0')})"
                                 f" in equation {_short(src)}", file, where)


def _check(node: ast.AST, expr: Expr, src: str, where: str, file: str | None) -> None:
    def fail(msg: str) -> NoReturn:
        raise ModelError(f"{msg} in equation {src!r}", file, where)

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            fail(f"constant {node.value!r} is not a number")
        expr.literals.append(float(node.value))
    elif isinstance(node, ast.Name):
        expr.names.add(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            fail(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, expr, src, where, file)
        _check(node.right, expr, src, where, file)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            fail(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, expr, src, where, file)
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _CMPOPS:
            fail("only single comparisons (<, <=, >, >=, ==, !=) are allowed")
        _check(node.left, expr, src, where, file)
        _check(node.comparators[0], expr, src, where, file)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            fail("only calls of named functions are allowed")
        name = node.func.id
        if name not in FUNCTIONS:
            fail(f"unknown function '{name}' (allowed: {', '.join(sorted(FUNCTIONS))})")
        if node.keywords:
            fail(f"{name}() takes no keyword arguments")
        lo, hi, _ = FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            fail(f"{name}() takes {lo}{'' if lo == hi else '+'} arguments, got {len(node.args)}")
        if name == "initial" and node is not expr.tree:
            fail("initial(...) must be the whole equation")
        expr.functions.add(name)
        args = node.args
        if name == "lookup":
            if not isinstance(args[0], ast.Name):
                fail("lookup() needs a table name as its first argument")
            expr.tables.add(args[0].id)
            args = args[1:]
        for arg in args:
            if isinstance(arg, ast.Starred):
                fail("starred arguments are not allowed")
            _check(arg, expr, src, where, file)
    else:
        fail(f"construct {type(node).__name__} is not allowed")


def to_source(expr: Expr, rename: dict[str, str], scalar: bool = False) -> str:
    """Python source for ``expr``; every name is replaced by ``rename[name]``.

    By default the code works on numpy arrays (one entry per run). With ``scalar`` it works on
    Python floats (one run): builtin min/max, ``math`` functions and conditional expressions,
    which raise on a division by zero or a math domain error instead of returning inf/nan.
    """
    return _emit(expr.tree, rename, scalar)


_SCALAR_FN = {"abs": "abs", "exp": "_m.exp", "log": "_m.log", "sqrt": "_m.sqrt"}
_UFUNC = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}


def to_source_into(expr: Expr, rename: dict[str, str], out: str) -> str | None:
    """numpy source that writes ``expr`` into the existing array ``out`` (no temporary copy).

    Only for an outermost +, -, *, / or two-argument min/max; otherwise None.
    """
    node = expr.tree
    if isinstance(node, ast.BinOp) and type(node.op) in _UFUNC:
        fn, args = _UFUNC[type(node.op)], (node.left, node.right)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max") \
            and len(node.args) == 2:
        fn, args = ("minimum" if node.func.id == "min" else "maximum"), (node.args[0], node.args[1])
    else:
        return None
    return f"_np.{fn}({_emit(args[0], rename)}, {_emit(args[1], rename)}, out={out})"


def _emit(node: ast.AST, rn: dict[str, str], sc: bool = False) -> str:
    if isinstance(node, ast.Constant):
        return repr(float(node.value))  # type: ignore[arg-type]  # parse() admits int and float constants only
    if isinstance(node, ast.Name):
        return rn[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _emit(node.left, rn, sc), _emit(node.right, rn, sc)
        if sc and isinstance(node.op, ast.Pow):
            return f"_m.pow({left}, {right})"
        return f"({left} {_BINOPS[type(node.op)]} {right})"
    if isinstance(node, ast.UnaryOp):
        return f"({'-' if isinstance(node.op, ast.USub) else '+'}{_emit(node.operand, rn, sc)})"
    if isinstance(node, ast.Compare):
        op = _CMPOPS[type(node.ops[0])]
        return f"({_emit(node.left, rn, sc)} {op} {_emit(node.comparators[0], rn, sc)})"
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    name = node.func.id
    if name == "lookup":
        return _lookup(node.args[0].id, _emit(node.args[1], rn, sc), rn, sc)  # type: ignore[attr-defined]
    if name in STOCK_FUNCTIONS:
        raise AssertionError(f"{name}() must be expanded by the model loader")  # pragma: no cover
    args = [_emit(a, rn, sc) for a in node.args]
    if sc:
        if name in ("min", "max"):
            return f"{name}({', '.join(args)})"
        if name == "clip":
            return f"min(max({args[0]}, {args[1]}), {args[2]})"
        if name in _SCALAR_FN:
            return f"{_SCALAR_FN[name]}({args[0]})"
        if name == "if_then_else":
            return f"({args[1]} if {args[0]} else {args[2]})"
        if name in ("step", "ramp", "pulse"):
            return f"_{name}_s({_time_of(name, rn)}, {', '.join(args)})"
        return args[0]  # initial
    if name in ("min", "max"):
        fn = "_np.minimum" if name == "min" else "_np.maximum"
        out = args[0]
        for a in args[1:]:
            out = f"{fn}({out}, {a})"
        return out
    if name == "clip":
        return f"_np.minimum(_np.maximum({args[0]}, {args[1]}), {args[2]})"
    if name in ("abs", "exp", "log", "sqrt"):
        return f"_np.{name}({args[0]})"
    if name == "if_then_else":
        return f"_np.where({args[0]}, {args[1]}, {args[2]})"
    if name in ("step", "ramp", "pulse"):
        return f"_{name}({_time_of(name, rn)}, {', '.join(args)})"
    if name == "initial":
        return args[0]
    raise AssertionError(name)  # pragma: no cover - parse() rejects everything else


#: Key of a rename mapping giving the source of the step's start time (for :data:`HELD_TIME_FUNCTIONS`).
HELD_TIME = "time@step"


def _time_of(fn: str, rn: dict[str, str]) -> str:
    """Source of the time a time function reads: the step's start for step/pulse when given, else ``time``."""
    return rn.get(HELD_TIME, rn["time"]) if fn in HELD_TIME_FUNCTIONS else rn["time"]


def table_scale_name(table: str) -> str:
    """Name of the parameter ``s`` that scales a table as y' = 1 + s (y - 1) (tables with ``y_scale_range``)."""
    return f"{table}_y_scale"


def _lookup(table: str, x: str, rn: dict[str, str], sc: bool) -> str:
    """Source of ``lookup(table, x)``: linear between points, flat outside; scaled when the table is."""
    suffix = "_s" if sc else ""
    src = f"_interp{suffix}({x}, _TX_{table}{suffix}, _TY_{table}{suffix})"
    scale = rn.get(table_scale_name(table))
    if scale is not None:
        src = f"(1.0 + {scale} * ({src} - 1.0))"
    return src


def hoist(expr: Expr, constant: set[str], table: dict[str, tuple[str, ast.expr]]) -> Expr:
    """``expr`` with every largest subtree that depends on ``constant`` names only replaced by a name.

    Such subtrees (``1 - graduate_qualify``, ``log(1 + rd_growth)``) have the same value at every
    step, so the compiler computes them once. ``table`` maps ``ast.dump`` of a hoisted subtree to
    (its name, the subtree) and is shared across equations, so equal subtrees are computed once.
    Time functions are never hoisted.
    """
    tree = copy.deepcopy(expr.tree)

    def is_const(node: ast.AST) -> bool:
        calls = [sub for sub in ast.walk(node) if isinstance(sub, ast.Call)]
        if any(c.func.id in ("step", "ramp", "pulse", "initial") for c in calls):  # type: ignore[attr-defined]
            return False
        return _names(node) <= constant

    class _Hoist(ast.NodeTransformer):
        def generic_visit(self, node: ast.AST) -> ast.AST:
            if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Call | ast.Compare) and is_const(node) \
                    and not (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)):
                key = ast.dump(node)
                if key not in table:
                    table[key] = (f"__h{len(table)}", node)
                return ast.copy_location(ast.Name(id=table[key][0], ctx=ast.Load()), node)
            return super().generic_visit(node)

    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "initial":
        return expr
    new = _Hoist().visit(ast.Expression(body=tree)).body
    out = Expr(text=expr.text, tree=new, functions=set(expr.functions), literals=list(expr.literals),
               tables=set(expr.tables))
    out.names = _names(new)
    return out


def _names(tree: ast.AST) -> set[str]:
    """Variable names in ``tree`` (function names and the table names of lookup() excluded)."""
    fns = {id(c.func) for c in ast.walk(tree) if isinstance(c, ast.Call)}
    fns |= {id(c.args[0]) for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
            and c.func.id == "lookup" and c.args}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in fns}


def _tables(tree: ast.AST) -> set[str]:
    """Table names called with lookup() in ``tree``."""
    return {c.args[0].id for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
            and c.func.id == "lookup" and c.args and isinstance(c.args[0], ast.Name)}


def from_tree(tree: ast.expr, text: str | None = None) -> Expr:
    """An Expr for a tree built from checked trees (names, functions and tables collected; no literals)."""
    e = Expr(text=text if text is not None else ast.unparse(tree), tree=tree)
    e.names = _names(tree)
    e.tables = _tables(tree)
    e.functions = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return e


def subtree(key_tree: ast.expr) -> Expr:
    """An Expr for a hoisted subtree (its names and functions collected)."""
    return from_tree(key_tree)


def inner(expr: Expr) -> Expr:
    """For ``initial(x)``, the expression ``x``; otherwise ``expr`` itself."""
    if not expr.is_initial:
        return expr
    arg = expr.tree.args[0]  # type: ignore[attr-defined]
    sub = Expr(text=ast.unparse(arg), tree=arg)
    sub.names = set(expr.names)
    sub.functions = expr.functions - {"initial"}
    sub.literals = list(expr.literals)
    sub.tables = set(expr.tables)
    return sub
