"""The language catalogue: every key has English and Chinese with the same placeholders."""

from __future__ import annotations

import string

import pytest

from sdsim import i18n


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def test_catalogue_is_not_empty() -> None:
    assert i18n.catalogue(), "no text files found in sdsim/text"


@pytest.mark.parametrize("key", sorted(i18n.catalogue()))
def test_every_key_has_both_languages_with_the_same_placeholders(key: str) -> None:
    texts = i18n.catalogue()[key]
    assert set(texts) == set(i18n.LANGS), f"{key}: languages {sorted(texts)}"
    assert all(texts[lang].strip() for lang in i18n.LANGS), f"{key}: an empty text"
    assert _fields(texts["en"]) == _fields(texts["zh"]), f"{key}: placeholders differ"


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(KeyError):
        i18n.t("no.such.key")


def test_formatting_and_fallback() -> None:
    assert i18n.t("common.language_name", "zh") == "中文"
    assert i18n.t("common.language_name", "xx") == "English"
