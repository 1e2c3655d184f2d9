// The interactive page: every label, lever and goal comes from /api/meta (the model files);
// nothing here knows which model is loaded. State lives in the URL: ?scenario=NAME&lang=en|zh&LEVER=VALUE...
"use strict";

const UI = {
  en: {
    scenario: "Scenario", reset: "Reset levers", download: "Download as scenario YAML", other: "中文",
    title: "Scenario explorer", policy: "Policy levers", external: "External conditions",
    events: "One-off events are set in scenario files: ", from: "from", range: "policy range",
    scen: "scenario: ", resetOne: "scenario value", met: "met", notmet: "not met", first: "first met",
    never: "never", goal: "goal", baseline: "baseline", p: "P(met)", ensembleWait: "ensemble …",
    published: "published", scaled: "goal × scope", rebased: "re-based target",
    lScenario: "this page's setting", lBaseline: "baseline (model values)", lBand: "ensemble 5–95 %",
    lGoal: "goal", lObs: "observed", lHist: "published after calibration (± tolerance)",
    lTarget: "re-based target", lReported: "published scope (model)",
    status: (c, e) => `central run ${c} ms` + (e ? ` · ensemble ${e}` : ""),
    ens: (ok, n, ms) => `${ok} of ${n} samples reproduce the calibration year, ${ms} ms`,
    expected: "expected count", poissonP: "P(≥ goal), Poisson",
    error: "Cannot run: ",
    pHelp: (n) => `share of ${n} ensemble samples (the model's uncertain assumptions, each re-calibrated) that meet the goal, with its 95 % interval`,
  },
  zh: {
    scenario: "情景", reset: "重置杠杆", download: "下载为情景 YAML", other: "English",
    title: "情景模拟", policy: "政策杠杆", external: "外部条件",
    events: "一次性事件在情景文件中设定：", from: "起始年", range: "政策范围",
    scen: "情景设定：", resetOne: "情景值", met: "达成", notmet: "未达成", first: "首次达成",
    never: "未达成", goal: "目标", baseline: "基准", p: "达成概率", ensembleWait: "集合计算中…",
    published: "公布口径", scaled: "目标×口径系数", rebased: "重新设定的目标",
    lScenario: "本页设定", lBaseline: "基准（模型取值）", lBand: "集合 5–95 %",
    lGoal: "目标", lObs: "实际值", lHist: "校准后公布值（±容差）",
    lTarget: "重新设定的目标", lReported: "公布口径（模型）",
    status: (c, e) => `中心情景 ${c} 毫秒` + (e ? ` · 集合 ${e}` : ""),
    ens: (ok, n, ms) => `${n} 个样本中 ${ok} 个可复现校准年，${ms} 毫秒`,
    expected: "期望值", poissonP: "泊松概率",
    error: "无法运行：",
    pHelp: (n) => `集合中 ${n} 个样本（不确定假设，逐个重新校准）达成目标的比例及其 95% 区间`,
  },
};

const S = {
  meta: null, lang: "en", scenario: null, levers: {}, // page lever values (constants from the policy start)
  seq: 0, changeAt: 0, inflight: false, pending: false, rendered: -1, last: null, ensembleCtl: null,
};
window.sdsimTimings = [];
window.sdsimState = S;

const $ = (id) => document.getElementById(id);
const t = (k) => UI[S.lang][k];
const label = (obj) => (obj.label && (obj.label[S.lang] || obj.label.en)) || obj.name;

function niceStep(span) {
  return span > 0 ? Math.pow(10, Math.floor(Math.log10(span / 100))) : 1;
}
function roundTo(v, step) {
  const d = Math.max(0, -Math.floor(Math.log10(step)));
  return Number(v.toFixed(d));
}
function fmt(v, goal) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (goal && goal.percent) return (100 * v).toPrecision(3) + "%";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(4)).toString();
}

// ------------------------------------------------------------------------------------- URL state

function readURL() {
  const q = new URLSearchParams(location.search);
  const out = { scenario: q.get("scenario"), lang: q.get("lang"), levers: {} };
  for (const [k, v] of q.entries()) {
    if (k === "scenario" || k === "lang") continue;
    const n = Number(v);
    out.levers[k] = v.trim() !== "" && isFinite(n) ? n : v;
  }
  return out;
}
function writeURL() {
  const q = new URLSearchParams();
  q.set("scenario", S.scenario);
  q.set("lang", S.lang);
  for (const [k, v] of Object.entries(S.levers)) q.set(k, String(v));
  history.replaceState(null, "", "?" + q.toString());
}

// -------------------------------------------------------------------------------------- requests

async function post(path, body, signal) {
  const r = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });
  let data;
  try { data = await r.json(); } catch (e) { throw new Error(`HTTP ${r.status}`); }
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}
function requestBody(ensemble) {
  return { scenario: S.scenario, levers: { ...S.levers }, parameters: {}, ensemble };
}
function showError(msg) {
  const m = $("message");
  m.textContent = t("error") + msg;
  m.hidden = false;
  document.body.dataset.error = msg;
}
function clearError() {
  $("message").hidden = true;
  delete document.body.dataset.error;
}

function changed() {
  S.seq += 1;
  S.changeAt = performance.now();
  document.body.dataset.seq = S.seq;
  writeURL();
  markLevers();
  if (S.ensembleCtl) S.ensembleCtl.abort();
  if (S.inflight) S.pending = true; else central();
}

async function central() {
  S.inflight = true;
  const seq = S.seq, at = S.changeAt;
  try {
    const data = await post("/api/run", requestBody(false));
    const got = performance.now();
    if (seq >= S.rendered) {
      S.rendered = seq;
      render(data, false);
      clearError();
    }
    if (seq === S.seq) {
      const ms = performance.now() - at;
      window.sdsimTimings.push({ seq, central_ms: ms, ensemble_ms: null, server_ms: data.timing_ms.central,
        response_ms: got - at, render_ms: performance.now() - got });
      document.body.dataset.centralSeq = seq;
      $("status").textContent = t("status")(Math.round(ms), t("ensembleWait"));
    }
  } catch (e) {
    if (seq === S.seq) { showError(e.message); document.body.dataset.centralSeq = seq; document.body.dataset.ensembleSeq = seq; }
  } finally {
    S.inflight = false;
    if (S.pending) { S.pending = false; central(); }
    else if (seq === S.seq && !document.body.dataset.error) ensemble(seq, at);
  }
}

async function ensemble(seq, at) {
  const ctl = new AbortController();
  S.ensembleCtl = ctl;
  try {
    const data = await post("/api/run", requestBody(true), ctl.signal);
    if (seq !== S.seq) return;
    render(data, true);
    const ms = performance.now() - at;
    const rec = window.sdsimTimings.find((r) => r.seq === seq);
    if (rec) rec.ensemble_ms = ms;
    document.body.dataset.ensembleSeq = seq;
    const c = rec ? Math.round(rec.central_ms) : "?";
    const e = data.ensemble;
    $("status").textContent = t("status")(c, e && !e.error ? `${Math.round(ms)} ms (${t("ens")(e.n_ok, e.n, Math.round(data.timing_ms.ensemble))})` : (e && e.error) || "");
  } catch (e) {
    if (e.name !== "AbortError" && seq === S.seq) { showError(e.message); document.body.dataset.ensembleSeq = seq; }
  }
}

// ---------------------------------------------------------------------------------------- levers

function scenarioMeta() {
  return S.meta.scenarios.find((s) => s.name === S.scenario) || {};
}

function buildLevers() {
  const box = $("levers");
  box.innerHTML = "";
  const sc = scenarioMeta();
  const start = sc.policy_start || S.meta.policy_start;
  const groups = [["policy", t("policy")], ["external", t("external")]];
  for (const [role, title] of groups) {
    const ls = S.meta.levers.filter((l) => l.role === role);
    if (!ls.length) continue;
    const h = document.createElement("h2");
    h.textContent = title;
    box.appendChild(h);
    for (const l of ls) box.appendChild(leverRow(l, sc, start));
  }
  const events = S.meta.levers.filter((l) => l.role !== "policy" && l.role !== "external");
  if (events.length) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = t("events") + events.map(label).join(", ");
    box.appendChild(p);
  }
  markLevers();
}

function leverRange(l) {
  if (l.policy_range) return l.policy_range;
  const lo = l.limits[0] ?? 0;
  const hi = l.limits[1] ?? Math.max(2 * Math.abs(l.value), lo + 1);
  return [lo, hi];
}

function leverRow(l, sc, start) {
  const [lo, hi] = leverRange(l);
  const step = niceStep(hi - lo);
  const div = document.createElement("div");
  div.className = "lever";
  div.dataset.lever = l.name;
  const own = (sc.levers || {})[l.name];
  const shown = l.name in S.levers ? S.levers[l.name] : own ? own.value : l.value;
  div.innerHTML = `
    <div class="name"></div>
    <div class="meta"></div>
    <div class="row">
      <input type="range" min="${lo}" max="${hi}" step="${step}">
      <input type="text" inputmode="decimal" spellcheck="false">
      <button type="button" class="reset1" title="${t("resetOne")}">↺</button>
    </div>
    <div class="scen"></div>
    <div class="desc"></div>`;
  div.querySelector(".name").textContent = label(l);
  div.querySelector(".meta").textContent = `${l.units} · ${t("from")} ${start} · ${t("range")} [${lo}, ${hi}]`;
  div.querySelector(".scen").textContent = own ? t("scen") + own.summary : "";
  div.querySelector(".desc").textContent = l.note || l.quote || "";
  const slider = div.querySelector("input[type=range]");
  const box = div.querySelector("input[type=text]");
  slider.setAttribute("aria-label", label(l));
  box.setAttribute("aria-label", `${label(l)} (${l.units})`);
  slider.value = typeof shown === "number" ? shown : l.value;
  box.value = String(shown);
  slider.addEventListener("input", () => {
    const v = roundTo(Number(slider.value), step);
    box.value = String(v);
    S.levers[l.name] = v;
    changed();
  });
  box.addEventListener("change", () => {
    const text = box.value.trim();
    const n = Number(text);
    const v = text !== "" && isFinite(n) ? n : text; // the server says what is wrong with anything else
    S.levers[l.name] = v;
    if (typeof v === "number") slider.value = v;
    changed();
  });
  div.querySelector(".reset1").addEventListener("click", () => {
    delete S.levers[l.name];
    const v = own ? own.value : l.value;
    slider.value = v;
    box.value = String(v);
    changed();
  });
  return div;
}

function markLevers() {
  for (const div of document.querySelectorAll(".lever")) {
    div.classList.toggle("changed", div.dataset.lever in S.levers);
  }
}

// ---------------------------------------------------------------------------------------- panels

function buildPanels() {
  const box = $("panels");
  box.innerHTML = "";
  for (const g of S.meta.goals) {
    const div = document.createElement("div");
    div.className = "panel";
    div.dataset.goal = g.name;
    div.innerHTML = `<h3></h3>
      <div class="figures"><span class="value"></span><span class="thr"></span><span class="badge"></span>
      <span class="first"></span><span class="prob"></span><span class="base"></span></div>
      <div class="published"></div><div class="plot"></div>`;
    box.appendChild(div);
  }
  const lg = $("legend");
  lg.innerHTML = "";
  const items = [["", "#1f5fa8", "lScenario"], ["", "#7f8c8d; border-top-style: dashed", "lBaseline"], ["band", "", "lBand"],
    ["", "#c0392b; border-top-style: dashed", "lGoal"], ["", "#16a085; border-top-style: dotted", "lReported"],
    ["star", "", "lObs"], ["dot", "", "lHist"], ["diamond", "", "lTarget"]];
  for (const [cls, color, key] of items) {
    const s = document.createElement("span");
    s.innerHTML = cls === "star" ? `<i class="star">★</i>` : `<i class="${cls}" style="border-color: ${color}"></i>`;
    s.appendChild(document.createTextNode(t(key)));
    lg.appendChild(s);
  }
}

function render(data, withEnsemble) {
  S.last = data;
  const ens = withEnsemble ? data.ensemble : null;
  if (ens && ens.bands) S.lastEnsemble = { scenario: data.scenario.name, ens };
  const warn = $("warnings");
  warn.hidden = !data.warnings.length;
  warn.textContent = data.warnings.join(" · ");
  for (const row of data.goals) {
    const g = S.meta.goals.find((x) => x.name === row.name);
    const div = document.querySelector(`.panel[data-goal="${row.name}"]`);
    if (!g || !div) continue;
    div.classList.toggle("met", row.met);
    div.classList.toggle("notmet", !row.met);
    div.querySelector("h3").textContent = label(g);
    const v = div.querySelector(".value");
    v.textContent = `${g.year}: ${fmt(row.value, g)}`;
    v.dataset.value = String(row.value);
    div.dataset.value = String(row.value);
    div.querySelector(".thr").textContent = `${t("goal")} ${g.test} ${fmt(g.threshold, g)}`;
    div.querySelector(".badge").textContent = row.met ? t("met") : t("notmet");
    div.querySelector(".first").textContent = `${t("first")}: ${row.first_year || t("never")}`;
    const p = div.querySelector(".prob");
    if (ens && ens.probability) {
      const pr = ens.probability[row.name], ci = ens.interval[row.name];
      p.textContent = `${t("p")} ${(100 * pr).toFixed(0)}% [${(100 * ci[0]).toFixed(0)}–${(100 * ci[1]).toFixed(0)}]`;
      p.dataset.value = String(pr);
      p.title = t("pHelp")(ens.n_ok);
      p.classList.remove("stale");
    } else {
      if (!p.textContent) p.textContent = `${t("p")} …`;
      p.classList.add("stale");
    }
    div.querySelector(".base").textContent = `${t("baseline")}: ${fmt(row.baseline_value, g)}` +
      (g.poisson ? ` · ${t("expected")}; ${t("poissonP")} ${(100 * row.probability).toFixed(0)}%` : "");
    const pub = div.querySelector(".published");
    if (row.value_reported !== null) {
      pub.textContent = `${t("published")}: ${fmt(row.value_reported, g)} · ${t("scaled")} ${g.test} ${fmt(row.threshold_reported, g)}` +
        (row.rebased_target !== null ? ` · ${t("rebased")} ${fmt(row.rebased_target, g)} (${row.rebased_target_year})` : "");
    } else pub.textContent = "";
    drawPlot(div.querySelector(".plot"), g, row, data, ens);
  }
}

function drawPlot(el, g, row, data, ens) {
  const k = g.percent ? 100 : 1;
  const sc = (a) => a.map((x) => (x === null ? null : x * k));
  const years = data.years;
  const last = [years[0], years[years.length - 1]];
  // the ensemble band of this run, or the previous one until the new ensemble arrives (its P is marked stale)
  const fresh = !!(ens && ens.bands);
  const e = fresh ? ens : S.lastEnsemble && S.lastEnsemble.scenario === data.scenario.name ? S.lastEnsemble.ens : null;
  const b = e ? e.bands[g.name] : { p5: [], p95: [] };
  const ey = e ? e.years : [];
  const bs = data.baseline.series[g.name];
  const s = data.series[g.name];
  const facts = g.points.filter((p) => p.kind === "fact");
  const obs = (rep) => g.points.filter((p) => p.kind !== "fact" && p.reported === rep);
  const obsTrace = (pts, color) => ({
    x: pts.map((p) => p.t), y: pts.map((p) => p.value * k), mode: "markers", name: t("lHist"),
    error_y: { type: "data", symmetric: false, array: pts.map((p) => (p.hi - p.value) * k),
      arrayminus: pts.map((p) => (p.value - p.lo) * k), color },
    marker: { symbol: "circle-open", size: 8, color, line: { width: 2 } },
  });
  const thr = row.threshold_reported !== null ? row.threshold_reported * k : null;
  const traces = [
    { x: ey, y: sc(b.p95), mode: "lines", line: { width: 0 }, hoverinfo: "skip" },
    { x: ey, y: sc(b.p5), mode: "lines", line: { width: 0 }, fill: "tonexty", name: t("lBand"),
      fillcolor: "rgba(31,95,168,0.18)" },
    { x: data.baseline.years, y: sc(bs.value), mode: "lines", name: t("lBaseline"),
      line: { color: "#7f8c8d", dash: "dash", width: 1.5 } },
    { x: s.reported ? years : [], y: s.reported ? sc(s.reported) : [], mode: "lines", name: t("lReported"),
      line: { color: "#16a085", dash: "dot", width: 1.5 } },
    { x: years, y: sc(s.value), mode: "lines", name: t("lScenario"), line: { color: "#1f5fa8", width: 2.5 } },
    { x: last, y: [g.threshold * k, g.threshold * k], mode: "lines", name: t("lGoal"),
      line: { color: "#c0392b", dash: "dash", width: 1.5 } },
    { x: thr === null ? [] : last, y: thr === null ? [] : [thr, thr], mode: "lines", name: t("scaled"),
      line: { color: "#e59866", dash: "dot", width: 1 } },
    { x: [g.year], y: [row.value * k], mode: "markers", name: String(g.year),
      marker: { symbol: "diamond", size: 10, color: row.met ? "#2e9d57" : "#c0392b", line: { color: "#000", width: 1 } } },
    { x: facts.map((p) => p.t), y: facts.map((p) => p.value * k), mode: "markers", name: t("lObs"),
      marker: { symbol: "star", size: 14, color: "#f39c12", line: { color: "#000", width: 1 } } },
    obsTrace(obs(false), "#000"),
    obsTrace(obs(true), "#16a085"),
    { x: g.targets.map((p) => p.t), y: g.targets.map((p) => p.value * k), mode: "markers", name: t("lTarget"),
      marker: { symbol: "diamond-open", size: 10, color: "#c0392b", line: { width: 2 } } },
  ];
  const key = JSON.stringify([traces, S.lang]);
  if (el.dataset.drawn === key) return; // this goal did not change: no redraw
  el.dataset.drawn = key;
  const layout = {
    margin: { l: 52, r: 8, t: 6, b: 24 }, showlegend: false, hovermode: "closest",
    xaxis: { dtick: 2, range: [years[0] - 1.3, years[years.length - 1] + 0.3] },
    yaxis: { ticksuffix: g.percent ? "%" : "", rangemode: "tozero", zeroline: false },
    paper_bgcolor: "#fff", plot_bgcolor: "#fafbfc",
  };
  Plotly.react(el, traces, layout, { displayModeBar: false, responsive: true });
}

// ------------------------------------------------------------------------------------- language

function applyLanguage() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("lang").textContent = t("other");
  $("title").textContent = t("title");
  document.title = t("title");
  const sel = $("scenario");
  for (const opt of sel.options) {
    const s = S.meta.scenarios.find((x) => x.name === opt.value);
    opt.textContent = s && s.title ? `${s.title[S.lang] || s.title.en} (${s.name})` : `${opt.value} (!)`;
  }
  const sc = scenarioMeta();
  $("description").textContent = sc.error ? sc.error : (S.lang === "zh" && sc.description_zh) || sc.description || "";
  buildLevers();
  buildPanels();
  if (S.last) render(S.last, !!(S.last.ensemble && document.body.dataset.ensembleSeq === String(S.seq)));
}

// ----------------------------------------------------------------------------------------- start

async function start() {
  try {
    const r = await fetch("/api/meta");
    S.meta = await r.json();
    if (!r.ok) throw new Error(S.meta.error || `HTTP ${r.status}`);
  } catch (e) {
    showError(e.message);
    return;
  }
  const url = readURL();
  S.lang = url.lang === "zh" || url.lang === "en" ? url.lang : S.meta.lang || "en";
  const names = S.meta.scenarios.map((s) => s.name);
  S.scenario = url.scenario || (names.includes("baseline") ? "baseline" : names[0]);
  S.levers = url.levers;
  const sel = $("scenario");
  for (const n of names) {
    const o = document.createElement("option");
    o.value = n;
    sel.appendChild(o);
  }
  if (!names.includes(S.scenario)) {
    const o = document.createElement("option");
    o.value = S.scenario;
    sel.appendChild(o);
  }
  sel.value = S.scenario;
  sel.addEventListener("change", () => {
    S.scenario = sel.value;
    S.levers = {};
    applyLanguage();
    changed();
  });
  $("lang").addEventListener("click", () => {
    S.lang = S.lang === "en" ? "zh" : "en";
    writeURL();
    applyLanguage();
  });
  $("reset").addEventListener("click", () => {
    S.levers = {};
    buildLevers();
    changed();
  });
  $("download").addEventListener("click", async () => {
    try {
      const data = await post("/api/scenario", requestBody(false));
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([data.yaml], { type: "application/x-yaml" }));
      a.download = data.filename;
      document.body.appendChild(a);
      a.click();
      a.remove();
      document.body.dataset.downloaded = data.filename;
    } catch (e) {
      showError(e.message);
    }
  });
  applyLanguage();
  changed();
}

start();
