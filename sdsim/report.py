"""report.md and report.html of one command: headings, paragraphs, tables and figures.

A report is a list of blocks, rendered twice (Markdown and standalone HTML) so that either file
is readable on its own next to the figures in the same folder.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """Blocks of a report, in order."""

    title: str
    lang: str = "en"  # the page's language (the HTML lang attribute)
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """A section heading."""
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        """A paragraph (plain text)."""
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table of strings (numbers are formatted by the caller)."""
        self.blocks.append(("table", (list(header), [[str(c) for c in r] for r in rows])))

    def image(self, file: str, caption: str) -> None:
        """A figure stored beside the report."""
        self.blocks.append(("img", (file, caption)))

    def markdown(self) -> str:
        """The report as Markdown."""
        out = [f"# {self.title}", ""]
        for kind, data in self.blocks:
            if kind == "h2":
                out += [f"## {data}", ""]
            elif kind == "p":
                out += [str(data), ""]
            elif kind == "table":
                header, rows = data  # type: ignore[misc]
                out.append("| " + " | ".join(_md(h) for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
                out.append("")
            elif kind == "img":
                file, caption = data  # type: ignore[misc]
                out += [f"![{caption}]({file})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        """The report as a standalone HTML page."""
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for kind, data in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{e(str(data))}</h2>")
            elif kind == "p":
                body.append(f"<p>{e(str(data))}</p>")
            elif kind == "table":
                header, rows = data  # type: ignore[misc]
                body.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
                body += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
                body.append("</tbody></table>")
            elif kind == "img":
                file, caption = data  # type: ignore[misc]
                body.append(f'<figure><img src="{e(file)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>')
        style = (
            "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            "th{background:#f0f0f0}img{max-width:100%}figcaption{font-style:italic;color:#444}"
        )
        lang = "zh" if self.lang == "zh" else "en"
        return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{e(self.title)}</title>'
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, folder: Path) -> list[str]:
        """Write report.md and report.html into ``folder``; returns the file names."""
        (folder / "report.md").write_text(self.markdown(), encoding="utf-8")
        (folder / "report.html").write_text(self.html(), encoding="utf-8")
        return ["report.md", "report.html"]


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")
