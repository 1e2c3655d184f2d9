"""Command line: ``simulate.py run|compare|sensitivity|optimize|calibrate|describe|check|export``.

Bad input (files, YAML, scenario values, options) prints one line naming the file, key and
value, and exits with code 2; no traceback and no partial result folder.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import InputError, one_line

COMMANDS = {
    "run": "run scenarios: goal table, time series, plots -> results/<name>/",
    "compare": "run several scenarios as one batch: overlay plots and goal matrix -> results/compare/",
    "sensitivity": "sensitivity and uncertainty analysis (oat, morris, sobol, mc)",
    "calibrate": "show how the calibration year is reproduced: targets, solved free parameters, residuals",
    "describe": "stocks, flows, loops, parameters with provenance, goals",
    "check": "model validity tests (units, mass balance, dt convergence, extremes, calibration)",
    "export": "write the model for Stella / Vensim / PySD (XMILE)",
    "serve": "interactive page on 127.0.0.1: lever sliders, live goal panels, JSON API (needs the 'app' extra)",
    "optimize": "least-cost policy lever package meeting the goals with P >= p -> results/<scenario>_optimize/",
    "init": "copy the model and the scenarios into a new folder for editing (then --model DIR/model)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit code 2 with one line, no usage dump
        raise InputError(f"{self.prog}: {message} (see --help)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="model folder (default: ./model, else the repository's)")


def _lang(p: argparse.ArgumentParser, help: str = "language of the printed summary") -> None:
    p.add_argument("--lang", choices=("en", "zh"), default="en", help=help)


def _figures(p: argparse.ArgumentParser, no_plots: bool = True) -> None:
    """``--lang``, ``--svg`` and (unless the command always draws) ``--no-plots`` of a command that writes figures."""
    _lang(p, "language of the printed summary, reports and figures")
    p.add_argument("--svg", action="store_true", help="also write SVG figures")
    if no_plots:
        p.add_argument("--no-plots", action="store_true", help="skip figures")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive, metavar="N", help="processes for calibration and integration of "
                   "large batches (default: every available core); results are identical whatever N")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = _Parser(prog="simulate.py",
                     description="System-dynamics scenario simulator (packaged model: Yubei innovation goals).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_run(sub)
    _add_compare(sub)
    _add_sensitivity(sub)
    _add_optimize(sub)
    _add_model_commands(sub)
    _add_serve(sub)
    return parser


def _add_run(sub: Any) -> None:
    """``run`` and ``init``."""
    p = sub.add_parser("run", help=COMMANDS["run"], description=COMMANDS["run"])
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML file(s) or names (e.g. baseline: "
                   "./scenarios, beside the model, then the bundled ones)")
    p.add_argument("--out", metavar="DIR", default="results", help="parent folder of the result folders (default: results); "
                   "a scenario run with --set goes to <name>+<overrides>/")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a lever or parameter")
    _figures(p)
    _common(p)

    p = sub.add_parser("init", help=COMMANDS["init"], description=COMMANDS["init"])
    p.add_argument("dir", metavar="DIR", help="a new (or empty) folder")
    _lang(p)


def _add_compare(sub: Any) -> None:
    """``compare``."""
    p = sub.add_parser("compare", help=COMMANDS["compare"], description=COMMANDS["compare"])
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML files")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/compare, or results/compare+<overrides> "
                   "with --set)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override in every scenario")
    _figures(p, no_plots=False)
    _workers(p)
    _common(p)


def _add_sensitivity(sub: Any) -> None:
    """``sensitivity``."""
    p = sub.add_parser("sensitivity", help=COMMANDS["sensitivity"], description=COMMANDS["sensitivity"])
    p.add_argument("scenario", metavar="SCENARIO")
    p.add_argument("--method", choices=("oat", "morris", "sobol", "mc"), default="oat")
    p.add_argument("--samples", type=int, metavar="N", help="samples (method default if omitted)")
    p.add_argument("--seed", type=int, default=12345, metavar="S", help="random seed (default 12345)")
    p.add_argument("--params", metavar="A,B,C", help="analyse only these uncertainties")
    p.add_argument("--levers", action="store_true", help="analyse the levers over their policy ranges instead")
    p.add_argument("--second-order", action="store_true", help="Sobol second-order indices")
    p.add_argument("--no-samples", action="store_true", help="do not write samples.npz (one row per sample)")
    p.add_argument("--history", choices=("match", "weights", "off"), default="match",
                   help="mc only: condition on the history file's observations: match (default: keep the samples "
                        "that agree), weights (tempered likelihood weights), off (prior only)")
    p.add_argument("--implausibility", type=float, default=3.0, metavar="Z",
                   help="history matching cut-off in standard deviations (default 3)")
    p.add_argument("--member", type=int, metavar="K",
                   help="write experiment K of this design (same method, samples, seed, inputs) as a scenario file "
                        "that `run` reproduces exactly, instead of analysing")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<scenario>_<method>)")
    _figures(p)
    _workers(p)
    _common(p)


def _add_optimize(sub: Any) -> None:
    """``optimize``."""
    p = sub.add_parser("optimize", help=COMMANDS["optimize"], description=COMMANDS["optimize"])
    p.add_argument("scenario", metavar="SCENARIO", help="input scenario (the package never goes below its levers)")
    p.add_argument("--goals", metavar="A,B", help="goal ids to meet (default: all)")
    p.add_argument("--probability", type=float, default=0.8, metavar="P", help="required P(goal met), 0 < P < 1 "
                   "(default 0.8)")
    p.add_argument("--samples", type=int, default=500, metavar="N", help="uncertainty samples (default 500)")
    p.add_argument("--seed", type=int, default=12345, metavar="S", help="random seed (default 12345)")
    p.add_argument("--start", type=int, metavar="YEAR", help="first year the package acts (default: the first "
                   "year after the last observation in the model's history)")
    p.add_argument("--shape", choices=("constant", "ramp"), default="constant",
                   help="each lever a constant from --start, or a two-point ramp from --start to the goal year")
    p.add_argument("--popsize", type=int, default=24, metavar="K", help="candidates per generation (default 24)")
    p.add_argument("--maxiter", type=int, default=40, metavar="G", help="generations at most (default 40)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<scenario>_optimize)")
    _figures(p)
    _workers(p)
    _common(p)


def _add_model_commands(sub: Any) -> None:
    """``calibrate``, ``describe``, ``check`` and ``export``: commands about the model itself."""
    p = sub.add_parser("calibrate", help=COMMANDS["calibrate"], description=COMMANDS["calibrate"])
    p.add_argument("scenario", nargs="?", metavar="SCENARIO", help="calibrate under this scenario's parameter overrides")
    _lang(p)
    _common(p)

    p = sub.add_parser("describe", help=COMMANDS["describe"], description=COMMANDS["describe"])
    p.add_argument("--format", choices=("text", "md"), default="text", help="md writes docs/model.md")
    _lang(p, "language of the printed summary, reports and figures")
    _common(p)

    p = sub.add_parser("check", help=COMMANDS["check"], description=COMMANDS["check"])
    p.add_argument("scenario", nargs="?", metavar="SCENARIO")
    _lang(p)
    _workers(p)
    _common(p)

    p = sub.add_parser("export", help=COMMANDS["export"], description=COMMANDS["export"])
    p.add_argument("scenario", nargs="?", metavar="SCENARIO")
    p.add_argument("--format", choices=("xmile",), default="xmile")
    p.add_argument("--out", metavar="FILE", help="output file (default: results/<scenario>.xmile)")
    _lang(p)
    _common(p)


def _add_serve(sub: Any) -> None:
    """``serve``."""
    p = sub.add_parser("serve", help=COMMANDS["serve"], description=COMMANDS["serve"])
    p.add_argument("--port", type=int, default=8050, help="port (default 8050; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this machine only; another address warns)")
    _lang(p, "initial page language")
    p.add_argument("--scenarios", metavar="DIR", help="your scenario folder (default ./scenarios); the shipped "
                   "scenarios are listed too")
    p.add_argument("--samples", type=int, default=200, metavar="N", help="ensemble samples (default 200)")
    p.add_argument("--seed", type=int, default=12345, metavar="S", help="ensemble random seed (default 12345)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    _common(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        module = importlib.import_module(f"sdsim.commands.{args.command}")
        from . import parallel

        parallel.set_default(getattr(args, "workers", None))
        try:
            return int(module.main(args) or 0)
        finally:
            parallel.set_default(None)
    except InputError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, RuntimeError, RecursionError, MemoryError) as exc:
        # last line of defence (write errors deep in a library): one line, exit 2, never a traceback
        import os

        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
            what = exc.strerror or type(exc).__name__
            print(one_line(f"error: {where}cannot read or write: {what}"), file=sys.stderr)
        elif isinstance(exc, RecursionError | MemoryError):
            print(f"error: the input is too large or too deeply nested ({type(exc).__name__})", file=sys.stderr)
        else:
            print(one_line(f"error: {str(exc) or type(exc).__name__}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sdsim.commands."):
            print(f"error: command '{exc.name.rsplit('.', 1)[-1]}' is not available yet", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
