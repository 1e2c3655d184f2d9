"""Atomic result folders, CSV/JSON writers and the run manifest."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import platform
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Run
from .errors import InputError
from .model import Model

PACKAGES = ("sdsim", "numpy", "scipy", "matplotlib", "PyYAML", "SALib", "tqdm", "pysd")


def check_target(target: str | Path) -> Path:
    """The absolute result folder ``target``, or an InputError when writing there could harm data.

    A result folder is replaced whole, so an existing ``target`` must be an earlier result folder
    (it holds a manifest.json written by this program); any other existing file or folder
    (``results/`` itself, ``.``, a home folder, a document) is refused.
    """
    t = Path(target).expanduser().resolve()
    if t.exists() and not t.is_dir():
        raise InputError("exists and is not a folder; choose a folder for the results", str(target), "--out")
    if t.is_dir() and any(t.iterdir()) and not (t / "manifest.json").is_file():
        raise InputError("exists and is not a result folder of this program (no manifest.json); "
                         "refusing to replace it: choose a new or empty folder", str(target), "--out")
    if t.parent == t:
        raise InputError("cannot write results to the file-system root", str(target), "--out")
    existing = next(p for p in t.parents if p.exists())
    if not existing.is_dir():
        raise InputError(f"{existing} is a file, so the folder cannot be made there", str(target), "--out")
    return t


@contextlib.contextmanager
def result_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``target`` in one rename.

    On any error the temporary folder is removed, so no half-written result is left. ``target``
    is checked with :func:`check_target` first.
    """
    target = check_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder: {exc.strerror}", str(target.parent), "--out") from None
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def fmt(v: Any) -> str:
    """Number formatting for CSV: 10 significant digits, empty for NaN."""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{float(v):.10g}"
    return str(v)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file (text fields quoted as needed, numbers via :func:`fmt`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([fmt(v) for v in row])
    path.write_text(buf.getvalue(), encoding="utf-8")


def output_names(model: Model, run: Run) -> list[str]:
    """Column order of timeseries.csv: stocks, flows, auxiliaries, annual outputs, series."""
    names = [n for n in model.stocks] + [n for n in model.flows] + [n for n in model.aux]
    names += list(run.annual) + list(run.series)
    return [n for n in names if n in run.names or n in run.annual or n in run.series]


def write_timeseries(path: Path, model: Model, run: Run, column: int = 0) -> None:
    """One row per year, one column per variable (flows as annual totals)."""
    names = output_names(model, run)
    data = np.stack([run.get(n)[:, column] for n in names], axis=1)
    write_csv(path, ["year", *names], ([int(y), *row] for y, row in zip(run.years, data, strict=True)))


def variable_rows(model: Model, run: Run) -> list[list[str]]:
    """name, kind, units, recorded as, en, zh for every output column."""
    rows = []
    for n in output_names(model, run):
        if n in model.series:
            s = model.series[n]
            rows.append([n, "series", s.units, "annual value", s.en, s.zh])
            continue
        v = model.variable(n)
        kind = {"aux": "auxiliary"}.get(v.kind, v.kind)
        rec = "annual total" if v.kind == "flow" or v.annual_total else (
            "annual value" if v.kind == "annual" else "year-end value")
        units = v.units.rsplit("/year", 1)[0] if rec == "annual total" and v.units.endswith("/year") else v.units
        rows.append([n, kind, units, rec, v.en, v.zh])
    return rows


def write_variables(path: Path, model: Model, run: Run) -> None:
    """Units and labels of every timeseries column (annual totals carry the per-year unit removed)."""
    write_csv(path, ["name", "kind", "units", "recorded_as", "en", "zh"], variable_rows(model, run))


def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[p] = metadata.version(p)
    return out


def jsonable(v: Any) -> Any:
    """Convert numpy values for JSON."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def write_json(path: Path, data: Any) -> None:
    """Write indented UTF-8 JSON."""
    path.write_text(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def manifest(model: Model, command: str, wall_time: float, **extra: Any) -> dict[str, Any]:
    """What is needed to reproduce a result: command, inputs, versions, model hashes, time."""
    return {
        "command": command,
        "argv": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_dir": str(model.directory),
        "model_files_sha256": model.file_hashes,
        "versions": versions(),
        "wall_time_s": round(wall_time, 4),
        **extra,
    }
