"""Load a model directory (structure, parameters, observed, goals, calibration) into a :class:`~sdsim.model.Model`.

The loader checks every file strictly: unknown keys, wrong types, unknown names in equations,
flows that belong to no stock, cycles among auxiliaries. Errors name the file and key path.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import expressions as ex
from .errors import ModelError
from .model import (
    COST_UNITS,
    Calibration,
    Fact,
    FreeParameter,
    Goal,
    Model,
    Parameter,
    Series,
    Table,
    Target,
    Variable,
    cost_name,
)
from .yamlio import (
    MAX_YAML_BYTES,
    as_dt,
    as_mapping,
    as_name,
    as_number,
    as_str,
    check_keys,
    describe_value,
    join,
    load_file,
    suggest,
)

if TYPE_CHECKING:
    from .compiler import Compiled

PROVENANCE_KINDS = ("seed", "derived", "external", "assumption", "calibrated")
DISTRIBUTIONS = ("uniform", "loguniform", "triangular", "truncnormal")
LEVER_ROLES = ("policy", "external", "event")
_LABEL_KEYS = ("en", "zh", "note")


def default_model_dir() -> Path:
    """``./model`` if present, else the bundled model (the repository's ``model/``, or the installed copy)."""
    here = Path.cwd() / "model"
    if (here / "structure.yaml").is_file():
        return here
    from .bundled import model_dir

    return model_dir()


_LOADED: dict[tuple[str, str], tuple[Model, Compiled]] = {}  # (folder, digest of its files) -> (model, compiled)
_LOADED_MAX = 4


def load_compiled(directory: str | Path | None = None) -> tuple[Model, Compiled]:
    """The model in ``directory`` (as :func:`load_model`) and its compiled form, cached in this process.

    The cache is keyed by the folder and a digest of its YAML files, so an edited model file is
    loaded again; a command run several times in one process (tests, notebooks) loads and compiles
    an unchanged model once. Callers must not modify the returned objects.
    """
    d = Path(directory) if directory is not None else default_model_dir()
    if not d.is_dir():
        return _load_and_compile(d)  # the usual error
    digest = hashlib.sha256()
    for f in sorted(d.glob("*.yaml")):
        if f.is_file():  # regular files only (never read a pipe); one too large to load is refused by load_model
            st = f.stat()
            body = f.read_bytes() if st.st_size <= MAX_YAML_BYTES else f"{st.st_size}:{st.st_mtime_ns}".encode()
            digest.update(f.name.encode() + b"\0" + hashlib.sha256(body).digest())
    key = (str(d.resolve()), digest.hexdigest())
    if key not in _LOADED:
        _LOADED[key] = _load_and_compile(d)
        while len(_LOADED) > _LOADED_MAX:
            del _LOADED[next(iter(_LOADED))]
    return _LOADED[key]


def _load_and_compile(d: Path) -> tuple[Model, Compiled]:
    from .compiler import compile_model  # the compiler imports the model's types

    model = load_model(d)
    return model, compile_model(model)


def load_model(directory: str | Path | None = None) -> Model:
    """Load and check the model in ``directory`` (default: :func:`default_model_dir`)."""
    d = Path(directory) if directory is not None else default_model_dir()
    if not d.is_dir():
        raise ModelError("model directory not found: run from the repository folder (it holds model/) "
                         "or pass --model DIR", str(d))
    files = {n: d / f"{n}.yaml" for n in ("structure", "parameters", "observed", "goals", "calibration")}
    # observed, goals and calibration may be absent (a model without data, goals or calibration)
    raw = {n: load_file(p) if n in ("structure", "parameters") or p.is_file() else None for n, p in files.items()}
    hashes = {f"{n}.yaml": hashlib.sha256(p.read_bytes()).hexdigest() for n, p in files.items() if p.is_file()}

    params = _load_parameters(raw["parameters"], str(files["parameters"]))
    facts, series_values, context = _load_observed(raw["observed"] or {"facts": {}}, str(files["observed"]))
    structure = _load_structure(raw["structure"], str(files["structure"]), series_values)
    _add_costs(structure["aux"], params, str(files["parameters"]))
    goals, out_of_scope = (_load_goals(raw["goals"], str(files["goals"])) if raw["goals"] is not None
                           else ({}, []))
    if raw["calibration"] is not None:
        calibration = _load_calibration(raw["calibration"], str(files["calibration"]))
        if "start" in structure and structure["start"] != calibration.start:
            raise ModelError(f"start {structure['start']} differs from the calibration window's start "
                             f"{calibration.start} ({files['calibration']})", str(files["structure"]), "start")
    elif "start" in structure:  # no calibration: levers act from the start
        calibration = Calibration(structure["start"], structure["start"], [], [])
    else:
        raise ModelError("a model without calibration.yaml needs its start year: add 'start: <year>'",
                         str(files["structure"]))

    model = Model(
        directory=d,
        stocks=structure["stocks"],
        flows=structure["flows"],
        aux=structure["aux"],
        annual=structure["annual"],
        params=params,
        facts=facts,
        series=structure["series"],
        goals=goals,
        calibration=calibration,
        sectors=structure["sectors"],
        out_of_scope=out_of_scope,
        context=context,
        file_hashes=hashes,
        dt=structure["dt"],
        tables=structure["tables"],
        max_end=structure.get("max_end"),
    )
    _add_table_scales(model, str(files["parameters"]))
    _check_names(model, files)
    from .stockfns import expand  # loads units, which imports this module

    expand(model)
    _load_companions(model)
    return model


def _add_table_scales(model: Model, pfile: str) -> None:
    """A table with a ``y_scale_range`` is an uncertainty: its scale s, the parameter ``<table>_y_scale``."""
    for t in model.tables.values():
        if t.y_scale_range is not None:
            pname = ex.table_scale_name(t.name)
            if pname in model.params:
                raise ModelError(f"'{pname}' is the scale parameter of table {t.name}; rename the parameter",
                                 pfile, f"parameters.{pname}")
            model.params[pname] = Parameter(
                name=pname, value=1.0, units="dmnl", provenance="assumption", range=t.y_scale_range,
                en=f"scale of table {t.name}: y' = 1 + s (y - 1)", zh=f"表函数 {t.name} 的缩放系数",
                note="s = 1 is the table as written; sampled by sensitivity analysis",
            )


def _load_companions(model: Model) -> None:
    """``history.yaml`` and ``figures.yaml`` beside the model files, when present (read against the model)."""
    d = model.directory
    hfile = d / "history.yaml"
    if hfile.exists():
        from .history import load_history

        model.history = load_history(hfile, model)
        model.file_hashes["history.yaml"] = hashlib.sha256(hfile.read_bytes()).hexdigest()
    ffile = d / "figures.yaml"
    if ffile.exists():
        from .figures_spec import load_figures

        model.figures = load_figures(ffile, model)
        model.file_hashes["figures.yaml"] = hashlib.sha256(ffile.read_bytes()).hexdigest()


def _add_costs(aux: dict[str, Variable], params: dict[str, Parameter], file: str) -> None:
    """Compile each policy lever's ``cost:`` equation as an auxiliary ``cost_<lever>`` (layer ``cost``).

    Costs are recorded as annual totals (亿元 per year integrated over each year) and feed nothing
    back into the system; their names, variables and units are checked like any equation.
    """
    for name, p in params.items():
        if p.cost is None:
            continue
        cname = cost_name(name)
        if cname in aux:
            raise ModelError(f"'{cname}' is the cost of lever {name}; rename the auxiliary", file,
                             f"levers.{name}.cost")
        aux[cname] = Variable(
            name=cname, kind="aux", units=COST_UNITS, expr=ex.parse(p.cost, f"levers.{name}.cost", file),
            annual_total=True, layer="cost", en=f"Cost of {p.en or name}", zh=f"{p.zh or name}的成本",
            note=f"levers.{name}.cost in parameters.yaml",
        )


def _labels(entry: dict, file: str, path: str) -> dict[str, Any]:  # keyword arguments of the data types
    return {k: as_str(entry[k], file, join(path, k)) for k in _LABEL_KEYS if k in entry}


def _pair(value: Any, file: str, path: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ModelError(f"expected [low, high], got {value!r}", file, path)
    lo = as_number(value[0], file, join(path, 0))
    hi = as_number(value[1], file, join(path, 1))
    if hi < lo:
        raise ModelError(f"high end {hi:g} is below low end {lo:g}", file, path)
    return lo, hi


def _provenance(entry: dict, file: str, path: str) -> dict[str, Any]:  # keyword arguments of the data types
    kind = entry.get("provenance")
    if kind not in PROVENANCE_KINDS:
        raise ModelError(
            f"provenance must be one of {', '.join(PROVENANCE_KINDS)}, got {kind!r}", file, join(path, "provenance")
        )
    needs = {"seed": "quote", "derived": "formula", "external": "source"}.get(kind)
    if needs and not entry.get(needs):
        raise ModelError(f"provenance {kind} needs a '{needs}'", file, path)
    out: dict[str, Any] = {"provenance": kind}
    for k in ("quote", "formula", "source"):
        if k in entry:
            out[k] = as_str(entry[k], file, join(path, k))
    return out


_PARAM_KEYS = (
    "value", "units", "range", "distribution", "fixed", "provenance", "quote", "formula",
    "source", "note", "en", "zh",
)


def _load_parameters(data: Any, file: str) -> dict[str, Parameter]:
    check_keys(data, ("parameters", "levers"), file, "", required=("parameters",))
    out: dict[str, Parameter] = {}
    for section, is_lever in (("parameters", False), ("levers", True)):
        entries = as_mapping(data.get(section), file, section)
        check_keys(entries, list(entries), file, section)
        for name, entry in entries.items():
            path = f"{section}.{name}"
            allowed = (*_PARAM_KEYS, "policy_range", "limits", "role", "cost") if is_lever else _PARAM_KEYS
            required = ("value", "units", "provenance", "policy_range") if is_lever else ("value", "units", "provenance")
            check_keys(entry, allowed, file, path, required=required)
            if name in out:
                raise ModelError("defined twice (as parameter and lever)", file, path)
            p = Parameter(
                name=name,
                value=as_number(entry["value"], file, join(path, "value")),
                units=as_str(entry["units"], file, join(path, "units")),
                is_lever=is_lever,
                fixed=bool(entry.get("fixed", False)),
                role=entry.get("role", "policy"),
                **_provenance(entry, file, path),
                **_labels(entry, file, path),
            )
            if "range" in entry:
                p.range = _pair(entry["range"], file, join(path, "range"))
            if "policy_range" in entry:
                p.policy_range = _pair(entry["policy_range"], file, join(path, "policy_range"))
            if "limits" in entry:
                p.limits = _pair(entry["limits"], file, join(path, "limits"))
            if p.role not in LEVER_ROLES:
                raise ModelError(f"role must be one of {', '.join(LEVER_ROLES)}, got {p.role!r}", file, join(path, "role"))
            if "cost" in entry:
                if p.role != "policy":
                    raise ModelError(f"a {p.role} lever has no cost (only policy levers are priced and optimised)",
                                     file, join(path, "cost"))
                p.cost = as_str(entry["cost"], file, join(path, "cost"))
            dist = entry.get("distribution", "uniform")
            if dist not in DISTRIBUTIONS:
                raise ModelError(
                    f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}",
                    file, join(path, "distribution"),
                )
            p.distribution = dist
            if p.provenance == "assumption" and p.range is None and not p.fixed and not is_lever:
                raise ModelError("an assumption needs a range (or fixed: true)", file, path)
            if p.distribution == "loguniform" and p.range and p.range[0] <= 0:
                raise ModelError("a log-uniform range must be positive", file, join(path, "range"))
            out[name] = p
    return out


_FACT_KEYS = ("value", "units", "year", "provenance", "quote", "formula", "source", "note", "en", "zh")


def _load_observed(data: Any, file: str) -> tuple[dict[str, Fact], dict[str, dict], dict]:
    check_keys(data, ("facts", "series", "context"), file, "", required=("facts",))
    facts: dict[str, Fact] = {}
    for name, entry in as_mapping(data.get("facts"), file, "facts").items():
        path = f"facts.{name}"
        check_keys(entry, _FACT_KEYS, file, path, required=("value", "units", "provenance"))
        facts[name] = Fact(
            name=name,
            value=as_number(entry["value"], file, join(path, "value")),
            units=as_str(entry["units"], file, join(path, "units")),
            year=int(as_number(entry["year"], file, join(path, "year"), integer=True)) if "year" in entry else None,
            **_provenance(entry, file, path),
            **_labels(entry, file, path),
        )
    series: dict[str, dict] = {}
    for name, entry in as_mapping(data.get("series"), file, "series").items():
        path = f"series.{name}"
        check_keys(
            entry, ("units", "values", "provenance", "source", "quote", "note", "en", "zh"), file, path,
            required=("units", "values", "provenance"),
        )
        values = entry["values"]
        if not isinstance(values, dict) or not values:
            raise ModelError("expected a mapping year -> value", file, join(path, "values"))
        vals = {}
        for y, v in values.items():
            year = int(as_number(y, file, join(path, f"values.{y}"), integer=True))
            vals[year] = as_number(v, file, join(path, f"values.{y}"))
        years = sorted(vals)
        if years != list(range(years[0], years[-1] + 1)):
            raise ModelError("years must be consecutive", file, join(path, "values"))
        series[name] = {**entry, "values": vals}
    return facts, series, data.get("context") or {}


_STRUCTURE_KEYS = ("time_units", "dt", "start", "max_end", "sectors", "stocks", "flows", "auxiliaries", "series",
                   "annual", "tables", "reporting", "reported")


def _load_structure(data: Any, file: str, series_values: dict[str, dict]) -> dict[str, Any]:
    check_keys(data, _STRUCTURE_KEYS, file, "", required=("stocks", "flows"))
    if data.get("time_units", "year") != "year":
        raise ModelError("only time_units: year is supported", file, "time_units")
    sectors = as_mapping(data.get("sectors"), file, "sectors")
    dt = as_dt(data.get("dt", 1 / 32), file, "dt")
    out: dict[str, Any] = {"dt": dt, "sectors": sectors, "stocks": {}, "flows": {}, "aux": {}, "annual": {}, "series": {},
                           "tables": {}}
    for key in ("start", "max_end"):
        if key in data:
            out[key] = int(as_number(data[key], file, key, integer=True))
    tables = data.get("tables") or {}
    if not isinstance(tables, dict):
        raise ModelError(f"expected a mapping of table names, got {tables!r}", file, "tables")
    for name, e in tables.items():
        out["tables"][str(name)] = _load_graph(str(name), e, file, f"tables.{name}")
    out["stocks"] = _load_stocks(data, file, sectors)
    _load_equations(data, file, out)
    out["series"] = _load_series(data, file, series_values)
    return out


def _load_stocks(data: Any, file: str, sectors: Mapping[str, Any]) -> dict[str, Variable]:
    """The ``stocks:`` section."""
    stocks: dict[str, Variable] = {}
    for name, e in as_mapping(data.get("stocks"), file, "stocks").items():
        path = f"stocks.{name}"
        check_keys(
            e, ("sector", "units", "initial", "inflows", "outflows", *_LABEL_KEYS), file, path,
            required=("units", "initial"),
        )
        if sectors and (not isinstance(e.get("sector"), str) or e.get("sector") not in sectors):
            raise ModelError(
                f"unknown sector {e.get('sector')!r}{suggest(str(e.get('sector')), sectors)}", file, join(path, "sector")
            )
        lists: dict[str, Any] = {}
        for k in ("inflows", "outflows"):
            v = e.get(k) or []
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ModelError("expected a list of flow names", file, join(path, k))
            lists[k] = v
        stocks[name] = Variable(
            name=name, kind="stock", units=as_str(e["units"], file, join(path, "units")),
            expr=ex.parse(e["initial"], join(path, "initial"), file), sector=e.get("sector", ""),
            **lists, **_labels(e, file, path),
        )
    return stocks


def _load_equations(data: Any, file: str, out: dict[str, Any]) -> None:
    """The ``flows``, ``auxiliaries``, ``annual``, ``reporting`` and ``reported`` sections, into ``out``."""
    sections = (("flows", "flow"), ("auxiliaries", "aux"), ("annual", "annual"), ("reporting", "aux"), ("reported", "aux"))
    for section, kind in sections:
        key = {"auxiliaries": "aux", "reporting": "aux", "reported": "aux"}.get(section, section)
        for name, e in as_mapping(data.get(section), file, section).items():
            path = f"{section}.{name}"
            allowed = ["equation", "units", *_LABEL_KEYS]
            if kind == "aux":
                allowed += ["annual_total", "table"]
            if section in ("reporting", "reported"):
                allowed += ["source"]
            check_keys(e, allowed, file, path, required=("equation", "units"))
            var = Variable(
                name=name, kind=kind, units=as_str(e["units"], file, join(path, "units")),
                expr=ex.parse(e["equation"], join(path, "equation"), file),
                annual_total=bool(e.get("annual_total", False)), **_labels(e, file, path),
                layer=section if section in ("reporting", "reported") else "system",
            )
            if name in out[key]:
                raise ModelError(f"'{name}' is defined twice in structure.yaml", file, path)
            if "table" in e:
                var.table = _load_table(e["table"], file, join(path, "table"))
            if var.expr.is_initial and (var.table is not None or var.annual_total):
                raise ModelError("initial(...) cannot have a table or annual_total", file, path)
            out[key][name] = var


def _load_series(data: Any, file: str, series_values: dict[str, dict]) -> dict[str, Series]:
    """The ``series:`` section: annual series over an observed series of observed.yaml."""
    series: dict[str, Series] = {}
    for name, e in as_mapping(data.get("series"), file, "series").items():
        path = f"series.{name}"
        check_keys(e, ("observed", "growth", "units", *_LABEL_KEYS), file, path, required=("observed", "growth", "units"))
        if as_name(e["observed"], file, join(path, "observed")) not in series_values:
            raise ModelError(
                f"unknown observed series {e['observed']!r}{suggest(str(e['observed']), series_values)}",
                file, join(path, "observed"),
            )
        obs = series_values[e["observed"]]
        series[name] = Series(
            name=name, units=as_str(e["units"], file, join(path, "units")), values=obs["values"],
            growth=as_str(e["growth"], file, join(path, "growth")), provenance=obs.get("provenance", ""),
            source=obs.get("source", ""), **{k: v for k, v in _labels(e, file, path).items() if k != "note"},
        )
    return series


def _load_table(data: Any, file: str, path: str) -> tuple[list[float], list[float]]:
    check_keys(data, ("x", "y"), file, path, required=("x", "y"))
    return table_points(data["x"], data["y"], file, path)


def table_points(xs: Any, ys: Any, file: str, path: str) -> tuple[list[float], list[float]]:
    """Checked points of a graphical function: lists of numbers, equal lengths, >= 2 points, x increasing."""
    for key, v in (("x", xs), ("y", ys)):
        if not isinstance(v, list):
            raise ModelError(f"expected a list of numbers, got {v!r}", file, join(path, key))
    if len(xs) < 2:
        raise ModelError(f"a table needs at least 2 points, got {len(xs)}", file, join(path, "x"))
    if len(xs) != len(ys):
        raise ModelError(f"x has {len(xs)} points but y has {len(ys)}", file, path)
    xv = [as_number(v, file, join(path, f"x.{i}")) for i, v in enumerate(xs)]
    yv = [as_number(v, file, join(path, f"y.{i}")) for i, v in enumerate(ys)]
    for i, (a, b) in enumerate(zip(xv, xv[1:], strict=False)):
        if b <= a:
            raise ModelError(f"x values must be strictly increasing: x[{i + 1}] = {b:g} after x[{i}] = {a:g}",
                             file, join(path, "x"))
    return xv, yv


_TABLE_KEYS = ("x", "y", "x_units", "units", "y_scale_range", "provenance", "quote", "formula", "source", *_LABEL_KEYS)


def _load_graph(name: str, data: Any, file: str, path: str) -> Table:
    """A ``tables:`` entry."""
    check_keys(data, _TABLE_KEYS, file, path, required=("x", "y", "x_units", "units"))
    xs, ys = table_points(data["x"], data["y"], file, path)
    t = Table(name=name, x=xs, y=ys, x_units=as_str(data["x_units"], file, join(path, "x_units")),
              units=as_str(data["units"], file, join(path, "units")), **_labels(data, file, path))
    if "provenance" in data:
        for k, v in _provenance(data, file, path).items():
            setattr(t, k, v)
    if "y_scale_range" in data:
        t.y_scale_range = _pair(data["y_scale_range"], file, join(path, "y_scale_range"))
        if t.units.strip() not in ("dmnl", "1"):
            raise ModelError(f"y_scale_range scales y around its neutral value 1 (y' = 1 + s (y - 1)): the table's "
                             f"units must be dmnl, got {t.units!r}", file, join(path, "units"))
    return t


_GOAL_KEYS = ("variable", "test", "threshold", "units", "poisson", "observed", "reported", "threshold_scale",
              "quote", "note", "en", "zh")


def _load_goals(data: Any, file: str) -> tuple[dict[str, Goal], list]:
    check_keys(data, ("year", "goals", "out_of_scope"), file, "", required=("year", "goals"))
    year = int(as_number(data["year"], file, "year", integer=True))
    goals = {}
    for name, e in as_mapping(data.get("goals"), file, "goals").items():
        path = f"goals.{name}"
        check_keys(e, _GOAL_KEYS, file, path, required=("variable", "test", "threshold", "units"))
        if e["test"] not in (">=", ">"):
            raise ModelError(f"test must be '>=' or '>', got {e['test']!r}", file, join(path, "test"))
        goals[name] = Goal(
            name=name, variable=as_str(e["variable"], file, join(path, "variable")), test=e["test"],
            threshold=as_number(e["threshold"], file, join(path, "threshold")),
            units=as_str(e["units"], file, join(path, "units")), year=year,
            poisson=bool(e.get("poisson", False)),
            observed=as_name(e["observed"], file, join(path, "observed")) if "observed" in e else None,
            reported=as_name(e["reported"], file, join(path, "reported")) if "reported" in e else None,
            threshold_scale=(as_name(e["threshold_scale"], file, join(path, "threshold_scale"))
                             if "threshold_scale" in e else None),
            quote=e.get("quote", ""), **_labels(e, file, path),
        )
    out_of_scope = data.get("out_of_scope") or []
    if not isinstance(out_of_scope, list):
        raise ModelError(f"expected a list, got {describe_value(out_of_scope)}", file, "out_of_scope")
    return goals, out_of_scope


def _load_calibration(data: Any, file: str) -> Calibration:
    check_keys(data, ("window", "policy_start", "free", "targets"), file, "", required=("window",))
    w = check_keys(data["window"], ("start", "end"), file, "window", required=("start", "end"))
    start = int(as_number(w["start"], file, "window.start", integer=True))
    end = int(as_number(w["end"], file, "window.end", integer=True))
    if end <= start:
        raise ModelError("window end must be after its start", file, "window")
    free = []
    for name, e in as_mapping(data.get("free"), file, "free").items():
        path = f"free.{name}"
        check_keys(e or {}, ("lower", "upper", "rate", "pins"), file, path)
        e = e or {}
        free.append(FreeParameter(name, e.get("lower"), e.get("upper"), bool(e.get("rate", False)), e.get("pins", "")))
    targets = []
    for name, e in as_mapping(data.get("targets"), file, "targets").items():
        path = f"targets.{name}"
        check_keys(e, ("variable", "inflows_of", "year", "value"), file, path, required=("year", "value"))
        if ("variable" in e) == ("inflows_of" in e):
            raise ModelError("give exactly one of 'variable' or 'inflows_of'", file, path)
        targets.append(
            Target(name, int(as_number(e["year"], file, join(path, "year"), integer=True)),
                   as_name(e["value"], file, join(path, "value")),
                   as_name(e["variable"], file, join(path, "variable")) if "variable" in e else None,
                   as_name(e["inflows_of"], file, join(path, "inflows_of")) if "inflows_of" in e else None)
        )
    if len(free) != len(targets):
        raise ModelError(f"{len(free)} free parameters but {len(targets)} targets", file, "free")
    policy_start = None
    if "policy_start" in data:
        policy_start = int(as_number(data["policy_start"], file, "policy_start", integer=True))
        if policy_start <= end:
            raise ModelError(f"policy_start must be after the window's end ({end}), got {policy_start}", file, "policy_start")
    return Calibration(start, end, free, targets, policy_start)


# ------------------------------------------------------------------------------------------ names


def _check_names(m: Model, files: dict[str, Path]) -> None:
    """Names across files: unique and usable, known in equations, flows owned by stocks, goals and targets known."""
    sfile, pfile = str(files["structure"]), str(files["parameters"])
    _check_unique(m, sfile)
    _check_layers(m, sfile, pfile)
    _check_equations(m, sfile, pfile)
    _check_flows(m, sfile)
    _check_goals(m, str(files["goals"]))
    _check_calibration(m, str(files["calibration"]))


def _check_unique(m: Model, sfile: str) -> None:
    """Every name is one kind of thing, in NFKC form, a usable identifier."""
    kinds: dict[str, str] = {}
    for group, label in (
        (m.facts, "fact"), (m.params, "parameter"), (m.stocks, "stock"), (m.flows, "flow"),
        (m.aux, "auxiliary"), (m.annual, "annual output"), (m.series, "series"), (m.tables, "table"),
    ):
        for name in group:
            if name in kinds:
                raise ModelError(f"name '{name}' is both a {kinds[name]} and a {label}", sfile, name)
            if unicodedata.normalize("NFKC", name) != name:  # Python reads 'ﬁll_time' as 'fill_time'
                raise ModelError(f"name {name!r} uses Unicode compatibility characters; equations read it as "
                                 f"{unicodedata.normalize('NFKC', name)!r}: write it in that form", sfile, name)
            if not name.isidentifier() or name.startswith("_") or name in ex.BUILTIN_NAMES or name in ex.FUNCTIONS:
                raise ModelError(f"'{name}' is not a usable name (letters, digits and _, not starting with _; "
                                 "not a function or 'time')", sfile, name)
            kinds[name] = label


def _check_equations(m: Model, sfile: str, pfile: str) -> None:
    """Every name and table an equation uses exists; stock functions only in flows and auxiliaries."""
    dynamic = {*m.facts, *m.params, *m.stocks, *m.flows, *m.aux, *m.series, *ex.BUILTIN_NAMES}
    annual_ns = {*m.facts, *m.params, *m.stocks, *m.flows, *m.aux, *m.series, *m.annual}

    def check(expr: ex.Expr, allowed: set[str], path: str, file: str = sfile) -> None:
        for n in sorted(expr.names - allowed):
            if n in m.tables:
                raise ModelError(f"table '{n}' is used as a variable in equation {expr.text!r}; call it as "
                                 f"lookup({n}, x)", file, path)
            raise ModelError(f"unknown variable '{n}'{suggest(n, allowed)} in equation {expr.text!r}", file, path)
        for t in sorted(expr.tables - set(m.tables)):
            raise ModelError(f"unknown table '{t}'{suggest(t, m.tables)} in equation {expr.text!r} "
                             "(tables are declared under tables: in structure.yaml)", file, path)
        if path.startswith(("stocks.", "annual.")) and expr.functions & set(ex.STOCK_FUNCTIONS):
            fn = sorted(expr.functions & set(ex.STOCK_FUNCTIONS))[0]
            raise ModelError(f"{fn}() is allowed in flows and auxiliaries only", sfile, path)

    for v in m.stocks.values():
        check(v.expr, dynamic, f"stocks.{v.name}.initial")
    for v in m.flows.values():
        check(v.expr, dynamic, f"flows.{v.name}.equation")
    for v in m.aux.values():
        if v.layer == "cost":
            check(v.expr, dynamic, f"levers.{v.name[len('cost_'):]}.cost", pfile)
        else:
            check(v.expr, dynamic, f"auxiliaries.{v.name}.equation")
    for v in m.annual.values():
        check(v.expr, annual_ns - {v.name}, f"annual.{v.name}.equation")
        if v.expr.functions & {"initial", "step", "ramp", "pulse"}:
            raise ModelError("annual outputs cannot use time functions or initial()", sfile, f"annual.{v.name}")
    for s in m.series.values():
        if s.growth not in m.params:
            raise ModelError(f"unknown growth parameter '{s.growth}'{suggest(s.growth, m.params)}", sfile,
                             f"series.{s.name}.growth")


def _check_layers(m: Model, sfile: str, pfile: str) -> None:
    """Reporting names and lever costs feed nothing back into the system."""
    statistics = {n for n, v in m.aux.items() if v.layer in ("reporting", "reported")}
    costs = {n for n, v in m.aux.items() if v.layer == "cost"}
    for group in (m.stocks, m.flows, m.aux):
        for v in group.values():
            used = v.expr.names & statistics
            if v.layer in ("system", "cost") and used:
                where = (pfile, f"levers.{v.name[len('cost_'):]}.cost") if v.layer == "cost" else (sfile, v.name)
                raise ModelError(f"'{sorted(used)[0]}' is a reporting name: the system cannot use what is published "
                                 "(reporting feeds nothing back)", *where)
            if v.expr.names & costs:
                where = (pfile, f"levers.{v.name[len('cost_'):]}.cost") if v.layer == "cost" else (sfile, v.name)
                raise ModelError(f"'{sorted(v.expr.names & costs)[0]}' is a lever cost: costs feed nothing back",
                                 *where)
            if v.layer == "reporting" and any(m.aux[n].layer == "reported" for n in used):
                raise ModelError("a reporting rule cannot use a reported indicator", sfile, f"reporting.{v.name}")


def _check_flows(m: Model, sfile: str) -> None:
    """Every flow is an inflow or outflow of some stock, never both of one."""
    owner: dict[str, int] = dict.fromkeys(m.flows, 0)
    for s in m.stocks.values():
        for k in ("inflows", "outflows"):
            for f in getattr(s, k):
                if f not in m.flows:
                    raise ModelError(f"unknown flow '{f}'{suggest(f, m.flows)}", sfile, f"stocks.{s.name}.{k}")
                owner[f] += 1
        if set(s.inflows) & set(s.outflows):
            raise ModelError("a flow cannot be both inflow and outflow of one stock", sfile, f"stocks.{s.name}")
    for f, count in owner.items():
        if count == 0:
            raise ModelError("flow is neither an inflow nor an outflow of any stock", sfile, f"flows.{f}")


def _check_goals(m: Model, gfile: str) -> None:
    """Goal years after the calibration window; goal variables, reported indicators, scales and facts known."""
    annual_ns = {*m.facts, *m.params, *m.stocks, *m.flows, *m.aux, *m.series, *m.annual}
    for g in m.goals.values():
        if g.year <= m.calibration.end:
            raise ModelError(f"expected a goal year after the calibration window ({m.calibration.start}-"
                             f"{m.calibration.end}), got {g.year}", gfile, "year")
        if g.variable not in {*m.stocks, *m.flows, *m.aux, *m.annual}:
            raise ModelError(f"unknown variable '{g.variable}'{suggest(g.variable, annual_ns)}", gfile,
                             f"goals.{g.name}.variable")
        if g.reported is not None and (g.reported not in m.aux or m.aux[g.reported].layer != "reported"):
            raise ModelError(f"'{g.reported}' is not a reported indicator (structure.yaml, section reported)", gfile,
                             f"goals.{g.name}.reported")
        if g.threshold_scale is not None and g.threshold_scale not in m.params:
            raise ModelError(f"unknown parameter '{g.threshold_scale}'{suggest(g.threshold_scale, m.params)}", gfile,
                             f"goals.{g.name}.threshold_scale")
        if g.observed is not None and g.observed not in m.facts:
            raise ModelError(f"unknown fact '{g.observed}'{suggest(g.observed, m.facts)}", gfile,
                             f"goals.{g.name}.observed")


def _check_calibration(m: Model, cfile: str) -> None:
    """Free parameters, their bounds and the targets' variables and values are known."""
    consts = {*m.facts, *m.params}
    for fp in m.calibration.free:
        if fp.name not in m.params:
            raise ModelError(f"unknown parameter{suggest(fp.name, m.params)}", cfile, f"free.{fp.name}")
        for b in ("lower", "upper"):
            val = getattr(fp, b)
            if isinstance(val, str) and val not in consts:
                raise ModelError(f"unknown bound '{val}'{suggest(val, consts)}", cfile, f"free.{fp.name}.{b}")
            if val is not None and not isinstance(val, str | int | float):
                raise ModelError(f"expected a number or a name, got {val!r}", cfile, f"free.{fp.name}.{b}")
    for t in m.calibration.targets:
        if t.variable and t.variable not in {*m.stocks, *m.flows, *m.aux}:
            raise ModelError(f"unknown variable '{t.variable}'{suggest(t.variable, m.variables)}", cfile,
                             f"targets.{t.name}.variable")
        if t.inflows_of and t.inflows_of not in m.stocks:
            raise ModelError(f"unknown stock '{t.inflows_of}'{suggest(t.inflows_of, m.stocks)}", cfile,
                             f"targets.{t.name}.inflows_of")
        if t.value_name not in consts:
            raise ModelError(f"unknown value '{t.value_name}'{suggest(str(t.value_name), consts)}", cfile,
                             f"targets.{t.name}.value")
