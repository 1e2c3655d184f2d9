"""``simulate.py describe [--format text|md] [--lang en|zh]``: the model, equation by equation, with sources.

``--format md`` writes ``docs/model.md`` and ``docs/stock_flow.png`` beside the model folder
(``model.zh.md`` and ``stock_flow.zh.png`` with ``--lang zh``), each written to a temporary
name and renamed into place.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..checkspec import load_checks
from ..describe import document, to_markdown, to_text
from ..errors import InputError
from ..i18n import t
from ..validity import baseline_scenario, loop_samples
from .common import load


def _atomic(jobs: list[tuple[Path, object]]) -> None:
    """Write every ``(path, write)`` to a temporary file in its folder, then rename them all into place.

    Nothing is renamed until every file is written, so a failure leaves the earlier files as they were.
    """
    tmps: list[tuple[str, Path]] = []
    try:
        for path, write in jobs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
            except (OSError, RuntimeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise InputError(f"cannot write there: {reason} (is {path.parent} a file?)", str(path.parent)) from None
            os.close(fd)
            tmps.append((tmp, path))
            write(tmp)  # type: ignore[operator]
            os.chmod(tmp, 0o644)
        for tmp, path in tmps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def main(args: argparse.Namespace) -> int:
    """Print the description, or write docs/model.md and docs/stock_flow.png."""
    model, cm = load(args)
    spec = load_checks(model) if (model.directory / "checks.yaml").is_file() else None
    lang = args.lang
    if args.format == "md" or lang == "zh":
        from .. import plots  # matplotlib only for the diagram or a CJK font check

        lang = plots.setup_language(lang)
    loops, solved = loop_samples(cm, baseline_scenario(model), spec)
    title = t("desc.page_title", lang, dir=model.directory.name)
    if args.format == "text":
        print(to_text(document(model, loops, solved, lang), title), end="")
        return 0
    from .. import diagram

    docs = model.directory.resolve().parent / "docs"
    suffix = "" if lang == "en" else f".{lang}"
    png = docs / f"stock_flow{suffix}.png"
    md = docs / f"model{suffix}.md"
    sections = document(model, loops, solved, lang, diagram=png.name)
    note = t("desc.generated", lang, dir=model.directory.name)
    _atomic([(png, lambda p: diagram.save(diagram.draw(model, lang, loops), p)),
             (md, lambda p: Path(p).write_text(to_markdown(sections, title, note), encoding="utf-8"))])
    print(f"wrote {md} and {png}")
    return 0
