"""Errors meant for people: they name the file, the key path and the value."""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` on one line: control characters (newlines, carriage returns, ...) shown as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class InputError(ValueError):
    """Bad input (file, YAML, scenario, model, command line).

    The CLI prints ``str(error)`` on one line and exits with code 2.
    """

    def __init__(self, message: str, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = message
        where = ""
        if file and key:
            where = f"{file}: {key}: "
        elif file:
            where = f"{file}: "
        elif key:
            where = f"{key}: "
        super().__init__(one_line(f"{where}{message}"))


class ModelError(InputError):
    """A model file is inconsistent (unknown name, cycle, forbidden construct, units)."""
