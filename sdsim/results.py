"""Atomic result folders, CSV/JSON writers and the run manifest."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .engine import Run
from .errors import InputError
from .model import Model

PACKAGES = ("sdsim", "numpy", "scipy", "matplotlib", "PyYAML", "SALib", "tqdm", "pysd")


TOOL = "sdsim"  # the marker this program writes into every manifest.json (with its version)
MANIFEST = "manifest.json"


def is_own_result(folder: Path) -> bool:
    """True when ``folder`` holds a manifest.json written by this program (``"tool": "sdsim"``)."""
    try:
        with (folder / MANIFEST).open("rb") as fh:
            raw = fh.read(4_000_001)
        if len(raw) > 4_000_000:
            return False
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("tool") == TOOL and isinstance(data.get("tool_version"), str)


def _os_error(exc: OSError | RuntimeError, target: str | Path, what: str = "cannot write there") -> InputError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return InputError(f"{what}: {reason}", str(target), "--out")


def check_target(target: str | Path) -> Path:
    """The absolute result folder ``target``, or an InputError when writing there could harm data.

    A result folder is replaced whole, so an existing non-empty ``target`` must be an earlier
    result folder of this program: its manifest.json names this tool (``"tool": "sdsim"`` and a
    version). Any other existing file or folder (``results/`` itself, ``.``, a home folder, a
    folder holding somebody else's manifest.json) is refused.
    """
    try:
        t = Path(target).expanduser().resolve()
        if t.parent == t:
            raise InputError("cannot write results to the file-system root", str(target), "--out")
        if t.exists() and not t.is_dir():
            raise InputError("exists and is not a folder; choose a folder for the results", str(target), "--out")
        if t.is_dir() and any(t.iterdir()) and not is_own_result(t):
            raise InputError("exists and is not a result folder of this program (no manifest.json written by "
                             f"{TOOL}); refusing to replace it: choose a new or empty folder", str(target), "--out")
        existing = next(p for p in t.parents if p.exists())
        if not existing.is_dir():
            raise InputError(f"{existing} is a file, so the folder cannot be made there", str(target), "--out")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"{existing} is not writable", str(target), "--out")
    except (OSError, RuntimeError) as exc:  # name too long, symlink loop, permission denied ...
        raise _os_error(exc, target, "cannot use this path") from None
    return t


_TMP_RE = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-[A-Za-z0-9_]+$")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale(parent: Path) -> list[Path]:
    """Remove hidden temporary folders and files (``.<name>.tmp-<pid>-<id>``) left in ``parent`` by dead processes.

    Only names of this exact pattern are touched, and only when process ``pid`` no longer exists.
    """
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP_RE.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                    removed.append(p)
                elif p.is_file() or p.is_symlink():  # a temporary file of a killed export
                    p.unlink()
                    removed.append(p)
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (released when the process dies; no file is left)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Staging:
    """Result folders written to hidden temporary folders and put in place together.

    ``add(target)`` checks ``target`` and returns a fresh temporary folder beside it; ``commit()``
    takes an exclusive lock on each parent folder, checks each target again and swaps each
    temporary folder into place by renames. On any error before the commit, every temporary folder
    is removed (no half-written result, no temporary folder left). Stale temporary folders of
    killed runs are removed on the way.
    """

    def __init__(self) -> None:
        self.items: list[tuple[Path, Path]] = []
        self.made: list[Path] = []  # parent folders this staging created (removed again on abort when empty)

    def add(self, target: str | Path) -> Path:
        t = check_target(target)
        if any(t == old for old, _ in self.items):
            raise InputError("two results would be written to the same folder", str(target), "--out")
        try:
            missing = [p for p in [t.parent, *t.parent.parents] if not p.exists()]
            t.parent.mkdir(parents=True, exist_ok=True)
            self.made += missing  # deepest first
            clean_stale(t.parent)
            tmp = Path(tempfile.mkdtemp(prefix=f".{t.name[:100]}.tmp-{os.getpid()}-", dir=t.parent))
        except (OSError, RuntimeError) as exc:
            raise _os_error(exc, t.parent, "cannot create the folder") from None
        self.items.append((t, tmp))
        return tmp

    def abort(self) -> None:
        for _, tmp in self.items:
            shutil.rmtree(tmp, ignore_errors=True)
        self.items.clear()
        for p in self.made:
            with contextlib.suppress(OSError):
                p.rmdir()  # only when still empty
        self.made.clear()

    def commit(self) -> None:
        try:
            for target, tmp in self.items:
                with folder_lock(target.parent):
                    check_target(target)  # again: another process may have written there meanwhile
                    old = None
                    if target.exists():
                        old = Path(tempfile.mkdtemp(prefix=f".{target.name[:100]}.old-{os.getpid()}-",
                                                    dir=target.parent))
                        os.rmdir(old)
                        target.rename(old)
                    try:
                        tmp.rename(target)
                    except OSError:
                        if old is not None:
                            old.rename(target)
                        raise
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            self.made.clear()
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise _os_error(exc, target) from None
        except BaseException:
            self.abort()
            raise
        self.items.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
            if isinstance(exc, OSError):  # a write error inside the staged folder
                raise _os_error(exc, exc.filename or "(result folder)") from None


def check_file_target(out: Path, own: Any, what: str) -> None:
    """Refuse to write ``out`` over anything but an earlier file of this program (``own(path)`` is True for those),
    through a broken path, or into a folder that cannot be written; ``what`` names such a file in the message."""
    try:
        if out.is_dir():
            raise InputError(f"is a folder; give a file name for the {what}", str(out), "--out")
        if out.exists() or out.is_symlink():
            if not out.is_file() or out.is_symlink() or not own(out):
                raise InputError(f"exists and is not {what} written by this program; refusing to overwrite it: "
                                 "choose a new file name", str(out), "--out")
        parent = next(p for p in out.resolve().parents if p.exists())
        if not parent.is_dir():
            raise InputError(f"{parent} is a file, so the file cannot be made there", str(out), "--out")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{parent} is not writable", str(out), "--out")
    except (OSError, RuntimeError) as exc:
        raise _os_error(exc, out, "cannot use this path") from None


def file_starts_with(path: Path, marker: str) -> bool:
    """True when the file begins with ``marker`` (read at most a few KB)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(marker.encode("utf-8"))).decode("utf-8", errors="replace") == marker
    except OSError:
        return False


@contextlib.contextmanager
def result_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``target`` in one rename (see :class:`Staging`)."""
    with Staging() as st:
        yield st.add(target)


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
    from . import __version__

    return {
        "tool": TOOL,
        "tool_version": __version__,
        "command": command,
        "argv": sys.argv,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_dir": str(model.directory),
        "model_files_sha256": model.file_hashes,
        "versions": versions(),
        "wall_time_s": round(wall_time, 4),
        **extra,
    }
