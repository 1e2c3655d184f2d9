"""Workers: independent chunks of a batch computed by forked processes.

A batch is split into the same chunks whatever the number of workers (the engine's and the
calibration's ``CHUNK``), and every chunk is computed exactly as one worker would compute it, so
results are bit-identical for any number of workers and a seed gives the same output whatever N.

Worker ``w`` of ``N`` takes chunks ``w, w + N, ...``. Large per-run records go into shared memory
(an anonymous shared ``mmap`` made before the fork, written in place by the children: no copy);
small per-chunk results come back pickled through a pipe. Where ``fork`` is unavailable, or in a
worker itself, everything runs in the calling process.
"""

from __future__ import annotations

import mmap
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_default: int | None = None  # set by the command line's --workers; None: every available core
_in_worker = False


def available() -> int:
    """CPU cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_default(workers: int | None) -> None:
    """Process-wide default number of workers (``None``: every available core)."""
    global _default
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    _default = workers


def resolve(workers: int | None) -> int:
    """The number of workers to use: ``workers``, else the default; 1 inside a worker or without fork."""
    if _in_worker or not hasattr(os, "fork") or sys.platform == "win32":
        return 1
    w = workers if workers is not None else (_default if _default is not None else available())
    return max(int(w), 1)


def shared_empty(shape: tuple[int, ...], dtype: Any = float) -> np.ndarray:
    """An uninitialised array in anonymous shared memory (writes by forked workers are seen by the parent)."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape)) * dt.itemsize
    buf = mmap.mmap(-1, max(size, 1))  # MAP_SHARED | MAP_ANONYMOUS
    return np.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).reshape(shape)


def run_chunks(fn: Callable[[int], Any], n_chunks: int, workers: int | None = None) -> list[Any]:
    """``[fn(0), ..., fn(n_chunks - 1)]`` computed by up to ``workers`` forked processes.

    ``fn(i)`` must depend only on ``i`` (and on state inherited at the fork); its return value is
    pickled back (return None and write into :func:`shared_empty` arrays for large results). An
    exception in a worker is raised again in the caller.
    """
    w = min(resolve(workers), n_chunks)
    if w <= 1:
        return [fn(i) for i in range(n_chunks)]
    children = []
    for k in range(1, w):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: chunks k, k + w, ...
            os.close(r)
            global _in_worker
            _in_worker = True
            code = 0
            try:
                try:
                    payload = pickle.dumps(("ok", {i: fn(i) for i in range(k, n_chunks, w)}), pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # noqa: BLE001 - sent to the parent, raised there
                    code = 1
                    try:
                        payload = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
                    except Exception:  # noqa: BLE001
                        payload = pickle.dumps(("error", RuntimeError(repr(exc))), pickle.HIGHEST_PROTOCOL)
                with os.fdopen(wfd, "wb") as fh:
                    fh.write(payload)
            finally:
                os._exit(code)
        os.close(wfd)
        children.append((pid, r))
    results: dict[int, Any] = {}
    error: BaseException | None = None
    try:
        for i in range(0, n_chunks, w):  # the caller is worker 0
            results[i] = fn(i)
    except BaseException as exc:  # noqa: BLE001 - raised after the children are collected
        error = exc
    for pid, r in children:
        with os.fdopen(r, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(pid, 0)
        if error is not None:
            continue
        if not data:
            error = RuntimeError(f"a worker process ended without a result (status {status})")
            continue
        kind, value = pickle.loads(data)  # noqa: S301 - written by our own forked child, never external data
        if kind == "error":
            error = value
        else:
            results.update(value)
    if error is not None:
        raise error
    return [results[i] for i in range(n_chunks)]


def chunks(n: int, size: int) -> Sequence[slice]:
    """Consecutive slices of at most ``size`` runs covering ``range(n)``."""
    return [slice(lo, min(n, lo + size)) for lo in range(0, n, size)]
