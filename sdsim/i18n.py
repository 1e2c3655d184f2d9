"""One language catalogue: every user-facing text of the product in English (en) and Chinese (zh).

The texts live in ``sdsim/text/*.yaml``, one file per part of the product (figures, console,
reports, ...). Each file maps a key to ``{en: ..., zh: ...}``; a key is unique across all files.
Texts are ``str.format`` templates: ``t("run.saved", "zh", path=p)``. A test checks that every key
has both languages with the same placeholders.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

LANGS = ("en", "zh")
TEXT_DIR = Path(__file__).resolve().parent / "text"


@functools.cache
def catalogue() -> dict[str, dict[str, str]]:
    """Every key of every catalogue file -> {language: text}; a key given in two files is an error."""
    from .yamlio import load_file

    out: dict[str, dict[str, str]] = {}
    for path in sorted(TEXT_DIR.glob("*.yaml")):
        data: Any = load_file(path) or {}
        for key, texts in data.items():
            if key in out:
                raise KeyError(f"text key {key!r} is defined twice (second time in {path.name})")
            out[str(key)] = {str(k): str(v) for k, v in (texts or {}).items()}
    return out


def t(key: str, lang: str = "en", **kw: Any) -> str:
    """The text ``key`` in ``lang`` (en or zh), formatted with ``kw``; unknown key -> KeyError."""
    text = catalogue()[key][lang if lang in LANGS else "en"]
    return text.format(**kw) if kw else text


def has(key: str) -> bool:
    """Whether the catalogue defines ``key``."""
    return key in catalogue()
