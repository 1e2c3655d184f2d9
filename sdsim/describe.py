"""The model described from its files: a document of sections, rendered as terminal text or Markdown.

Sections: overview, stocks, flows, auxiliaries, annual outputs and series, parameters (value,
range, provenance with the seed's words), levers (policy ranges), observed facts, calibration,
goals, feedback loops (from the equation graph, with polarity) and out-of-scope milestones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .i18n import has, t
from .loops import Loop
from .model import Model, Parameter
from .textable import render, width


def h(key: str, lang: str) -> str:
    """A column heading."""
    return t(f"desc.h.{key}", lang)


def word(w: str, lang: str) -> str:
    """A word of the model files' vocabulary (role, layer, kind, scope, provenance, distribution) in ``lang``."""
    for key in (f"common.prov.{w}", f"desc.word.{w}"):
        if has(key):
            return t(key, lang)
    return w


_ENGLISH = re.compile(r"[A-Za-z]{3,}")  # an English word (identifiers and a few abbreviations removed first)
_KEEP = re.compile(r"\w*_\w*|\b(?:GDP|HTE|STAR|CNY)\b")


def model_text(text: str, lang: str) -> str:
    """A free text of the model files (note, source): as written, except that Chinese pages leave out text in
    English sentences (the English page, docs/model.md, shows it); Chinese words and formulas stay."""
    if lang == "en" or not text:
        return text
    if "MODEL_SPEC" in text:  # a citation of the project's design notes, which readers of the page do not have
        return ""
    return "" if _ENGLISH.search(_KEEP.sub("", text)) else text


@dataclass
class Section:
    """A heading, paragraphs, and an optional table."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str = ""  # Markdown only


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.4g}"
    return f"{v:.6g}"


def _range(p: Parameter, lang: str = "en") -> str:
    if p.range is None:
        return word("fixed", lang) if p.fixed else "-"
    lo, hi = p.range
    tail = "" if p.distribution == "uniform" else f" ({word(p.distribution, lang)})"
    return f"[{_fmt(lo)}, {_fmt(hi)}]{tail}{' (' + word('fixed', lang) + ')' if p.fixed else ''}"


def _source(p: Any, lang: str) -> str:
    parts = []
    if getattr(p, "quote", ""):
        parts.append(f"“{p.quote}”")
    for key in ("formula", "source", "note"):
        text = model_text(getattr(p, key, ""), lang)
        if text:
            parts.append(text)
    return " — ".join(parts)


def _pair(v: tuple[float, float] | None) -> str:
    if v is None:
        return "-"
    return f"[{_fmt(v[0])}, {'inf' if v[1] == float('inf') else _fmt(v[1])}]"


def document(model: Model, loops: Sequence[Loop], solved: dict[str, Any], lang: str = "en",
             diagram: str = "") -> list[Section]:
    """The model description as sections (``solved``: calibrated parameter values at baseline)."""
    out = [_overview(model, loops, lang)]
    if diagram:
        out.append(Section(t("desc.diagram", lang), image=diagram))
    out += _variables(model, lang)
    out += _statistics(model, lang)
    out += _costs(model, lang)
    out += _tables(model, lang)
    out += _inputs(model, solved, lang)
    out += _history(model, lang)
    out += _closing(model, loops, lang)
    return out


def _overview(m: Model, loops: Sequence[Loop], lang: str) -> Section:
    """Counts of everything, the time convention and the calibration window."""
    prov = Counter(p.provenance for p in m.constants.values())
    pol = Counter(lo.polarity for lo in loops)
    cal = m.calibration
    sec = Section(t("desc.overview", lang))
    extra = (t("desc.overview_inactive", lang, n=pol.get("0", 0)) if pol.get("0") else "") + \
        (t("desc.overview_changing", lang, n=pol.get("?", 0)) if pol.get("?") else "")
    sec.paragraphs.append(t(
        "desc.overview_counts", lang, stocks=len(m.stocks), flows=len(m.flows), aux=len(m.aux), annual=len(m.annual),
        sectors=len(m.sectors) or 1, params=len(m.constants), levers=len(m.levers), facts=len(m.facts),
        goals=len(m.goals), loops=len(loops), R=pol.get("R", 0), B=pol.get("B", 0), extra=extra,
        provenance=t("desc.list_sep", lang).join(t("desc.prov_count", lang, n=n, kind=word(k, lang))
                                                 for k, n in prov.most_common())))
    calib = (t("desc.calib_window", lang, start=cal.start, end=cal.end, targets=len(cal.targets), free=len(cal.free))
             if cal.targets else t("desc.no_calib", lang))
    sec.paragraphs.append(t("desc.time", lang, start=cal.start, calib=calib, lever_start=cal.lever_start))
    if lang != "en":
        sec.paragraphs.append(t("desc.english_notes", lang))
    return sec


def _variables(m: Model, lang: str) -> list[Section]:
    """Stocks (by sector), flows with the stocks they change, and the system's auxiliaries."""
    owner: dict[str, list[str]] = {}
    for s, v in m.stocks.items():
        for f in v.inflows:
            owner.setdefault(f, []).append(f"+{s}")
        for f in v.outflows:
            owner.setdefault(f, []).append(f"−{s}")
    sectors = m.sectors or {"": {"en": "", "zh": ""}}
    sec = Section(t("desc.stocks", lang), header=[h(k, lang) for k in ("name", "label", "units", "initial", "in",
                                                                          "out", "sector")])
    for k, lab in sectors.items():
        for s, v in m.stocks.items():
            if (v.sector or "") == k:
                sec.rows.append([s, v.label(lang), v.units, v.expr.text, ", ".join(v.inflows), ", ".join(v.outflows),
                                 lab.get(lang) or lab.get("en", "")])
    for s, v in m.stocks.items():  # stocks outside the declared sectors (hidden stocks of an auxiliary's smooth)
        if (v.sector or "") not in sectors:
            sec.rows.append([s, v.label(lang), v.units, v.expr.text, ", ".join(v.inflows), ", ".join(v.outflows), ""])
    flows = Section(t("desc.flows", lang), header=[h(k, lang) for k in ("name", "label", "units", "equation", "stock")])
    for f, v in m.flows.items():
        flows.rows.append([f, v.label(lang), v.units, v.expr.text, ", ".join(owner.get(f, []))])
    aux = Section(t("desc.aux", lang), header=[h(k, lang) for k in ("name", "label", "units", "equation", "note")])
    for a, v in m.aux.items():
        if v.layer != "system":
            continue
        eq = v.expr.text + (t("desc.table_eq", lang, x=v.table[0], y=v.table[1]) if v.table else "")
        if v.fixed_delay is not None:
            dly, x0 = v.fixed_delay
            eq = f"delay_fixed({v.expr.text}, {dly.text}, {x0.text})"
        aux.rows.append([a, v.label(lang), v.units, eq, model_text(v.note, lang)])
    return [sec, flows, aux]


def _tables(m: Model, lang: str) -> list[Section]:
    """Graphical functions and the hidden structure of smooth/delay calls."""
    out = []
    if m.tables:
        sec = Section(t("desc.tables", lang), header=[h("name", lang), h("label", lang), h("x", lang), h("y", lang),
                                                       h("range", lang), h("prov", lang), h("note", lang)])
        sec.paragraphs.append(t("desc.tables_note", lang))
        for tb in m.tables.values():
            xs = ", ".join(_fmt(x) for x in tb.x)
            ys = ", ".join(_fmt(y) for y in tb.y)
            rng = _pair(tb.y_scale_range) if tb.y_scale_range else "-"
            sec.rows.append([tb.name, tb.label(lang), f"[{xs}] ({tb.x_units})", f"[{ys}] ({tb.units})", rng,
                             word(tb.provenance, lang) if tb.provenance else "-", _source(tb, lang)])
        out.append(sec)
    if m.stock_functions:
        sec = Section(t("desc.hidden", lang), header=[h(k, lang) for k in ("variable", "call", "stocks", "buffer",
                                                                             "value")])
        sec.paragraphs.append(t("desc.hidden_note", lang))
        for f in m.stock_functions:
            args = [f.input.text, f.delay.text] + ([f.initial.text] if f.initial is not None else [])
            sec.rows.append([f.owner, f"{f.fn}({', '.join(args)})", ", ".join(f.stocks) or "-",
                             ", ".join(f.flows) or (t("desc.ring_buffer", lang) if f.fn == "delay_fixed" else "-"),
                             f.output])
        out.append(sec)
    sec = Section(t("desc.annual", lang), header=[h(k, lang) for k in ("name", "label", "units", "equation")])
    for a, v in m.annual.items():
        sec.rows.append([a, v.label(lang), v.units, v.expr.text])
    for s, v in m.series.items():
        obs = ", ".join(f"{y}: {_fmt(x)}" for y, x in v.values.items())
        sec.rows.append([s, (v.zh if lang == "zh" else v.en) or s, v.units,
                         t("desc.series_eq", lang, obs=obs, growth=v.growth)])
    out.append(sec)
    return out


def _inputs(m: Model, solved: dict[str, Any], lang: str) -> list[Section]:
    """Parameters, levers, observed facts, the calibration's free parameters and the goals."""
    def value(name: str) -> str:
        return _fmt(float(np.asarray(solved.get(name, m.params[name].value)).reshape(-1)[0]))

    sec = Section(t("desc.params", lang), header=[h(k, lang) for k in ("name", "label", "value", "units", "range",
                                                                         "prov", "source")])
    sec.paragraphs.append(t("desc.params_note", lang))
    for name, p in m.constants.items():
        sec.rows.append([name, p.label(lang), value(name), p.units, _range(p, lang), word(p.provenance, lang),
                         _source(p, lang)])
    lev = Section(t("desc.levers", lang), header=[h(k, lang) for k in ("name", "label", "role", "value", "units",
                                                                         "policy", "limits", "range", "prov", "source")])
    for name, p in m.levers.items():
        lev.rows.append([name, p.label(lang), word(p.role, lang), _fmt(p.value), p.units, _pair(p.policy_range),
                         _pair(p.limits), _range(p, lang), word(p.provenance, lang), _source(p, lang)])
    facts = Section(t("desc.facts", lang), header=[h(k, lang) for k in ("name", "label", "value", "units", "year",
                                                                          "prov", "source")])
    for name, f in m.facts.items():
        facts.rows.append([name, (f.zh if lang == "zh" else f.en) or name, _fmt(f.value), f.units,
                           str(f.year or ""), word(f.provenance, lang), _source(f, lang)])
    cal = Section(t("desc.calibration", lang), header=[h(k, lang) for k in ("name", "value", "pins", "target")])
    targets = {tg.name: tg for tg in m.calibration.targets}
    for fp in m.calibration.free:
        tg = targets.get(fp.pins)
        what = ""
        if tg:
            var = tg.variable or t("cal.inflows_of", lang, stock=tg.inflows_of)
            what = f"{var} {tg.year} = {tg.value_name}"
        cal.rows.append([fp.name, value(fp.name), fp.pins, what])
    goals = Section(t("desc.goals", lang), header=[h(k, lang) for k in ("name", "label", "variable", "test", "year",
                                                                          "quote", "note")])
    for g in m.goals.values():
        goals.rows.append([g.name, g.label(lang), g.variable, f"{g.test} {_fmt(g.threshold)} {g.units}", str(g.year),
                           g.quote, model_text(g.note, lang)])
    return [sec, lev, facts, cal, goals]


def _closing(m: Model, loops: Sequence[Loop], lang: str) -> list[Section]:
    """Feedback loops, out-of-scope milestones and context figures."""
    sec = Section(t("desc.loops", lang), header=["#", h("polarity", lang), h("loop", lang), h("desc", lang)])
    sec.paragraphs.append(t("desc.loops_note", lang))
    for i, lo in enumerate(sorted(loops, key=lambda x: (not x.name, x.name, len(x.nodes))), 1):
        desc = ""
        if lo.declared is not None:
            desc = (lo.declared.zh if lang == "zh" and lo.declared.zh else model_text(lo.declared.en, lang))
        sec.rows.append([lo.name or f"L{i}", lo.polarity, lo.path(), desc])
    out = [sec]
    sec = Section(t("desc.scope", lang), header=[h(k, lang) for k in ("year", "text", "quote")])
    sec.paragraphs.append(t("desc.scope_note", lang))
    for item in m.out_of_scope:
        sec.rows.append([str(item.get("year", "")), str(item.get(lang) or model_text(str(item.get("en", "")), lang)),
                         str(item.get("quote", ""))])
    out.append(sec)
    if m.context:
        sec = Section(t("desc.context", lang), header=[h(k, lang) for k in ("name", "desc", "prov", "source")])
        for k, v in m.context.items():
            v = v if isinstance(v, dict) else {"text": str(v)}
            sec.rows.append([k, model_text(str(v.get("text", "")), lang), word(str(v.get("provenance", "")), lang),
                             model_text(str(v.get("quote") or v.get("source") or ""), lang)])
        out.append(sec)
    return out


def _statistics(m: Model, lang: str) -> list[Section]:
    """The reporting rule in force and the published indicators (they feed nothing back into the system)."""
    rows = [[a, word(v.layer, lang), v.label(lang), v.units, v.expr.text, model_text(v.note, lang)]
            for a, v in m.aux.items() if v.layer in ("reporting", "reported")]
    if not rows:
        return []
    sec = Section(t("desc.statistics", lang), header=[h(k, lang) for k in ("name", "layer", "label", "units",
                                                                             "equation", "note")], rows=rows)
    sec.paragraphs.append(t("desc.statistics_note", lang))
    return [sec]


def _costs(m: Model, lang: str) -> list[Section]:
    """The policy levers' cost equations (parameters.yaml `cost:`), compiled as cost_<lever>; they feed nothing back."""
    rows = [[a, a[len("cost_"):], v.units, v.expr.text] for a, v in m.aux.items() if v.layer == "cost"]
    if not rows:
        return []
    sec = Section(t("desc.costs", lang), header=[h(k, lang) for k in ("name", "lever", "units", "equation")], rows=rows)
    sec.paragraphs.append(t("desc.costs_note", lang))
    return [sec]


def _history(m: Model, lang: str) -> list[Section]:
    """Published figures after the calibration year, with their kind (only observations are evidence)."""
    hist = m.history
    if hist is None:
        return []
    sec = Section(t("desc.history", lang), header=["id", h("variable", lang), "t", h("value", lang), "±",
                                                    h("kind", lang), h("scope_col", lang), h("source", lang)])
    sec.paragraphs.append(t("desc.history_note", lang))
    for r in hist.rows:
        when = _fmt(r.t) if r.t is not None else f"({_fmt(r.period[0])}, {_fmt(r.period[1])}]"  # type: ignore[index]
        tol = f"{r.tolerance:.0%}" if r.tolerance is not None else (_pair(r.interval) if r.interval else "-")
        scope = t(f"check.scope.{r.scope}", lang) if has(f"check.scope.{r.scope}") else r.scope
        sec.rows.append([r.id, r.variable, when, _fmt(r.value), tol, word(r.kind, lang), scope,
                         model_text(r.source or r.note, lang)])
    if hist.discrepancy:
        sec.paragraphs.append(t("desc.discrepancy", lang) + ", ".join(f"{k} {v:.0%}" for k, v in hist.discrepancy.items()))
    return [sec]


# ------------------------------------------------------------------------------------- renderers


def to_text(sections: Sequence[Section], title: str) -> str:
    """Plain text for the terminal."""
    lines = [title, "=" * width(title)]
    for s in sections:
        if s.image:
            continue
        lines += ["", s.title, "-" * width(s.title)]
        lines += s.paragraphs
        if s.header:
            if s.paragraphs:
                lines.append("")
            lines.append(render(s.header, [[c.replace("\n", " ") for c in r] for r in s.rows]))
    return "\n".join(lines) + "\n"


def _cell(c: str) -> str:
    return c.replace("|", "\\|").replace("\n", "<br>") or " "


def to_markdown(sections: Sequence[Section], title: str, note: str) -> str:
    """Markdown with pipe tables."""
    lines = [f"# {title}", "", f"<!-- {note} -->", f"*{note}*"]
    for s in sections:
        lines += ["", f"## {s.title}", ""]
        if s.image:
            lines.append(f"![{s.title}]({s.image})")
        for p in s.paragraphs:
            lines += [p, ""]
        if s.header:
            lines.append("| " + " | ".join(_cell(c) for c in s.header) + " |")
            lines.append("|" + "|".join("---" for _ in s.header) + "|")
            for r in s.rows:
                lines.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return "\n".join(lines) + "\n"

