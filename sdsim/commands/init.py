"""``simulate init DIR``: copy the bundled model and scenarios into DIR for editing (then ``--model DIR/model``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..bundled import model_dir, scenarios_dir
from ..errors import InputError
from ..i18n import t


def main(args: argparse.Namespace) -> int:
    """Copy ``model/`` and ``scenarios/`` into a new or empty folder; never overwrite anything."""
    dest = Path(args.dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError("exists and is not an empty folder; give a new folder (nothing was copied)", str(dest))
    src = {"model": model_dir(), "scenarios": scenarios_dir()}
    for name, folder in src.items():
        if not folder.is_dir():
            raise InputError(f"the bundled {name} folder is missing from this installation", str(folder))
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name, folder in src.items():
            shutil.copytree(folder, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py"))
    except OSError as exc:
        raise InputError(f"cannot write there ({exc.strerror or exc})", str(dest)) from None
    lang = getattr(args, "lang", "en")
    print(t("init.copied", lang, n=len(list((dest / "scenarios").glob("*.yaml"))), dest=dest))
    print(t("init.edit", lang, dest=dest))
    print(f"  simulate run {dest}/scenarios/baseline.yaml --model {dest}/model")
    return 0
