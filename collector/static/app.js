/* canarytrace built-in dashboard: panels, trace list, trace view and compare view.
 * Talks only to the collector's JSON API (/api/dashboard/*, /api/compare). */
"use strict";

const API = "api/dashboard";
const KEY_STORAGE = "canarytrace.apiKey";
const PALETTE = ["#2e90fa", "#f5a524", "#12b76a", "#f04438", "#7a5af8", "#06aed4",
                 "#ee46bc", "#667085", "#84cc16", "#b54708"];

const state = { config: null, charts: new Map(), models: [], traceId: null };

/* --- small helpers ---------------------------------------------------------- */

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, params) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    for (const v of [].concat(value)) if (v !== "" && v !== undefined && v !== null) url.searchParams.append(key, v);
  }
  const headers = {};
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(url, { headers });
  if (response.status === 401) { askForKey(); throw new Error("an API key is needed"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail ? String(body.detail) : `HTTP ${response.status}`);
  return body;
}

function askForKey() {
  const banner = document.getElementById("banner");
  if (!banner.classList.contains("hidden") && banner.querySelector("input")) return;
  const input = el("input", { type: "password", placeholder: "API key", size: 40 });
  const save = el("button", { class: "button", type: "button", onclick: () => {
    localStorage.setItem(KEY_STORAGE, input.value.trim());
    banner.classList.add("hidden");
    refresh();
  } }, "Use key");
  banner.replaceChildren("This collector requires an API key: ", input, " ", save);
  banner.classList.remove("hidden");
}

function showError(message) {
  const banner = document.getElementById("banner");
  banner.replaceChildren(message);
  banner.classList.remove("hidden");
}

function clearError() {
  const banner = document.getElementById("banner");
  if (!banner.querySelector("input")) banner.classList.add("hidden");
}

function range() {
  const seconds = Number(document.querySelector("#filters [name=range]").value);
  const until = new Date();
  const since = new Date(until.getTime() - seconds * 1000);
  return { since: since.toISOString(), until: until.toISOString() };
}

function filterParams() {
  const form = document.getElementById("filters");
  const params = range();
  for (const name of ["service", "route", "model"]) params[name] = form.elements[name].value;
  return params;
}

const UNITS = {
  percentunit: (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`,
  ms: (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`),
  currencyUSD: (v) => `$${v < 0.01 ? v.toPrecision(2) : v.toFixed(2)}`,
  short: (v) => (Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k`
    : Math.abs(v) >= 10 || v === 0 ? `${+v.toFixed(1)}` : `${+v.toPrecision(2)}`),
  none: (v) => `${v}`,
};

function formatValue(unit, value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return (UNITS[unit] || UNITS.none)(Number(value));
}

function formatTime(ms, withDate) {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return withDate ? `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}` : time;
}

function formatDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

/* --- filters ------------------------------------------------------------------ */

async function loadFilters() {
  const params = range();
  const options = await api(`${API}/filters`, params);
  const form = document.getElementById("filters");
  for (const [name, values] of Object.entries(options.values)) {
    const select = form.elements[name];
    if (!select) continue;
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "All"),
      ...values.map((v) => el("option", { value: v, selected: v === current }, v)));
  }
  state.models = options.models || [];
  fillCompareModels();
}

/* --- overview panels ---------------------------------------------------------- */

function buildPanels() {
  const grid = document.getElementById("panel-grid");
  grid.replaceChildren(...state.config.panels.map((panel) => el("div", {
    class: `card panel${panel.width >= 2 ? " wide" : ""}`,
    dataset: { panelId: panel.id, state: "loading", rows: "0" },
  },
  el("div", { class: "card-head" }, el("h2", {}, panel.title)),
  el("p", { class: "panel-desc" }, panel.description),
  el("div", { class: "panel-body" }, el("div", { class: "panel-state" }, "Loading…")))));
}

async function loadPanels() {
  const params = filterParams();
  await Promise.all(state.config.panels.map(async (panel) => {
    const card = document.querySelector(`.panel[data-panel-id="${panel.id}"]`);
    try {
      const data = await api(`${API}/panels/${panel.id}`, params);
      renderPanel(card, panel, data);
    } catch (error) {
      card.dataset.state = "error";
      card.querySelector(".panel-body").replaceChildren(
        el("div", { class: "panel-state" }, `Could not load: ${error.message}`));
    }
  }));
}

function renderPanel(card, panel, data) {
  card.dataset.rows = String(data.rows.length);
  const body = card.querySelector(".panel-body");
  const old = state.charts.get(panel.id);
  if (old) { old.destroy(); state.charts.delete(panel.id); }
  if (!data.rows.length) {
    card.dataset.state = "empty";
    body.replaceChildren(el("div", { class: "panel-state" }, "No data in this range."));
    return;
  }
  if (panel.kind === "table") {
    body.replaceChildren(renderTable(data));
  } else {
    const canvas = el("canvas");
    body.replaceChildren(el("div", { class: "chart-box" }, canvas));
    const config = panel.kind === "bars" ? barChart(panel, data) : timeChart(panel, data);
    state.charts.set(panel.id, new Chart(canvas, config));
  }
  card.dataset.state = "ok";
}

function seriesColumns(data) {
  const [, second] = data.columns;
  const labelled = second && data.types[1] === "string";
  return { label: labelled ? 1 : null, values: data.columns.map((_, i) => i).slice(labelled ? 2 : 1) };
}

function timeChart(panel, data) {
  const { label, values } = seriesColumns(data);
  const datasets = new Map();
  for (const row of data.rows) {
    for (const i of values) {
      const name = [label !== null ? row[label] : null, values.length > 1 ? data.columns[i] : null]
        .filter(Boolean).join(" · ") || data.columns[i];
      if (!datasets.has(name)) datasets.set(name, []);
      datasets.get(name).push({ x: row[0], y: row[i] });
    }
  }
  const spanMs = data.to_ms - data.from_ms;
  return {
    type: "line",
    data: { datasets: [...datasets.entries()].map(([name, points], n) => ({
      label: name, data: points, borderColor: PALETTE[n % PALETTE.length],
      backgroundColor: PALETTE[n % PALETTE.length], borderWidth: 2,
      pointRadius: points.length < 4 ? 3 : 0, cubicInterpolationMode: "monotone", spanGaps: true,
      borderDash: /p99|retry|output/.test(name) ? [5, 4] : [],
    })) },
    options: chartOptions(panel, {
      x: { type: "linear", min: data.from_ms, max: data.to_ms, grid: { display: false },
           ticks: { maxTicksLimit: 7, callback: (v) => formatTime(v, spanMs > 86400000) } },
    }, (items) => formatTime(items[0].parsed.x, true)),
  };
}

function barChart(panel, data) {
  const { values } = seriesColumns({ ...data, types: ["string", "number"] });
  return {
    type: "bar",
    data: {
      labels: data.rows.map((row) => row[0]),
      datasets: values.map((i, n) => ({
        label: data.columns[i], data: data.rows.map((row) => row[i]),
        backgroundColor: PALETTE[n % PALETTE.length], borderRadius: 4, maxBarThickness: 28,
      })),
    },
    options: chartOptions(panel, { x: { grid: { display: false } } }),
  };
}

function chartOptions(panel, scales, title) {
  return {
    responsive: true, maintainAspectRatio: false, animation: false, parsing: true,
    interaction: { mode: "nearest", intersect: false },
    plugins: {
      legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, font: { size: 11 } } },
      tooltip: { callbacks: {
        title,
        label: (ctx) => `${ctx.dataset.label}: ${formatValue(panel.unit, ctx.parsed.y)}`,
      } },
    },
    scales: { ...scales, y: { beginAtZero: true, grid: { color: "#eef1f5" },
                             ticks: { callback: (v) => formatValue(panel.unit, v) } } },
  };
}

function renderTable(data) {
  const head = el("tr", {}, data.columns.map((c) => el("th", {}, humanize(c))));
  const rows = data.rows.map((row) => el("tr", {}, row.map((value, i) =>
    el("td", {}, renderCell(data.columns[i], data.types[i], value)))));
  return el("div", { class: "table-wrap" },
    el("table", { class: "data" }, el("thead", {}, head), el("tbody", {}, rows)));
}

function humanize(column) {
  const words = column.replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function renderCell(column, type, value) {
  if (column === "Verdict") return el("span", { class: `pill verdict ${value}` }, value);
  if (type === "time") return formatTime(value, true);
  if (column === "Reasons") return reasonsText(value);
  return value === null ? "–" : String(value);
}

function reasonsText(raw) {
  try {
    const reasons = JSON.parse(raw);
    if (Array.isArray(reasons)) {
      return reasons.map((r) => (typeof r === "string" ? r : r.message || r.text || JSON.stringify(r))).join("; ");
    }
  } catch (_) { /* not JSON: show as is */ }
  return String(raw);
}

/* --- trace list ----------------------------------------------------------------- */

function traceParams() {
  const params = filterParams();
  const form = document.getElementById("trace-filters");
  for (const name of ["variant", "outcome", "trace_id"]) {
    const value = form.querySelector(`[name=${name}]`).value.trim();
    if (value) params[name] = value;
  }
  return params;
}

async function loadTraces() {
  const tbody = document.querySelector("#trace-table tbody");
  const { traces } = await api(`${API}/traces`, traceParams());
  document.getElementById("trace-empty").classList.toggle("hidden", traces.length > 0);
  tbody.replaceChildren(...traces.map((t) => el("tr", {
    dataset: { traceId: t.trace_id }, class: t.trace_id === state.traceId ? "selected" : "",
    onclick: () => openTrace(t.trace_id).catch((e) => showError(e.message)),
  },
  el("td", {}, formatTime(t.started_ms, true)),
  el("td", {}, el("code", {}, t.trace_id.slice(0, 12))),
  el("td", {}, t.root_name, t.errors ? el("span", { class: "pill bad" }, " error") : null),
  el("td", {}, t.service),
  el("td", {}, t.models.map((m) => el("span", { class: "pill" }, m))),
  el("td", {}, t.routes.join(", ")),
  el("td", { class: "num" }, formatDuration(t.duration_ms)),
  el("td", { class: "num" }, `${t.input_tokens} / ${t.output_tokens}`),
  el("td", {}, evalPill(t)),
  el("td", {}, feedbackPill(t)))));
}

function evalPill(t) {
  if (!t.evals_scored) return el("span", { class: "muted" }, "–");
  return t.evals_failed
    ? el("span", { class: "pill bad" }, `${t.evals_failed}/${t.evals_scored} failed`)
    : el("span", { class: "pill good" }, `${t.evals_scored} passed`);
}

function feedbackPill(t) {
  const parts = [];
  if (t.thumbs_up) parts.push(el("span", { class: "pill good" }, `▲ ${t.thumbs_up}`));
  if (t.thumbs_down) parts.push(el("span", { class: "pill bad" }, `▼ ${t.thumbs_down}`));
  return parts.length ? parts : el("span", { class: "muted" }, "–");
}

/* --- trace view ----------------------------------------------------------------- */

async function openTrace(traceId) {
  state.traceId = traceId;
  for (const row of document.querySelectorAll("#trace-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.traceId === traceId);
  }
  const view = document.getElementById("trace-view");
  const trace = await api(`${API}/traces/${traceId}`);
  document.getElementById("trace-view-id").textContent = traceId;
  renderSpanTree(trace);
  view.classList.remove("hidden");
  view.scrollIntoView({ behavior: "instant", block: "start" });
}

function renderSpanTree(trace) {
  const start = Math.min(...trace.spans.map((s) => s.start_ms));
  const end = Math.max(...trace.spans.map((s) => s.start_ms + s.duration_ms));
  const total = Math.max(end - start, 0.001);
  const rows = trace.spans.map((span) => {
    const kind = span.error ? "error" : span.kind;
    const row = el("div", { class: "span-row", dataset: { spanId: span.span_id, kind: span.kind } },
      el("div", { class: "span-name", style: `padding-left:${span.depth * 16}px` },
        el("span", { class: `kind ${kind}` }, span.kind),
        el("span", { class: "label", title: span.name }, span.name),
        span.evals.length ? evalBadge(span.evals) : null),
      el("div", { class: "bar-track", title: formatDuration(span.duration_ms) },
        el("div", { class: `bar ${kind}`, style:
          `left:${((span.start_ms - start) / total) * 100}%;width:${(span.duration_ms / total) * 100}%` })));
    row.addEventListener("click", () => selectSpan(trace, span, row));
    return row;
  });
  document.getElementById("span-tree").replaceChildren(...rows);
  const first = trace.spans.find((s) => s.kind === "llm") || trace.spans[0];
  selectSpan(trace, first, rows[trace.spans.indexOf(first)]);
}

function evalBadge(evals) {
  const failed = evals.filter((e) => e.passed === false).length;
  return el("span", { class: `pill ${failed ? "bad" : "good"}` }, failed ? `${failed} fail` : "pass");
}

function selectSpan(trace, span, row) {
  for (const r of document.querySelectorAll(".span-row")) r.classList.toggle("selected", r === row);
  const facts = [
    el("span", { class: "pill" }, formatDuration(span.duration_ms)),
    span.model && el("span", { class: "pill" }, span.model),
    span.variant && el("span", { class: `pill ${span.variant}` }, span.variant),
    span.role && el("span", { class: "pill" }, span.role),
    span.route && el("span", { class: "pill info" }, `route ${span.route}`),
    span.cohort && el("span", { class: "pill info" }, `cohort ${span.cohort}`),
    span.step !== null && span.step !== undefined && el("span", { class: "pill" }, `step ${span.step}${span.step_kind ? ` · ${span.step_kind}` : ""}`),
    (span.input_tokens || span.output_tokens) && el("span", { class: "pill" }, `${span.input_tokens} in / ${span.output_tokens} out tokens`),
    span.fallback && el("span", { class: "pill warn" }, "fallback"),
    span.error && el("span", { class: "pill bad" }, span.status_message || "error"),
  ];
  const detail = [el("h3", {}, span.name), el("div", { class: "facts" }, facts)];
  if (span.evals.length) detail.push(el("h4", {}, "Evaluations"), ...span.evals.map(renderEval));
  if (span.tool) detail.push(el("h4", {}, `Tool call: ${span.tool.name}`), jsonBlock(span.tool.arguments),
    el("h4", {}, "Result"), jsonBlock(span.tool.result));
  if (span.input_messages.length) detail.push(el("h4", {}, "Input"), ...span.input_messages.map(renderMessage));
  if (span.output_messages.length) detail.push(el("h4", {}, "Output"), ...span.output_messages.map(renderMessage));
  if (trace.feedback.length && span.depth === 0) {
    detail.push(el("h4", {}, "Feedback"), ...trace.feedback.map((f) => el("div", { class: "eval" },
      el("span", { class: `pill ${f.score < 0 ? "bad" : "good"}` }, f.score < 0 ? "▼ thumbs down" : "▲ thumbs up"),
      el("span", {}, f.comment || el("span", { class: "muted" }, "no comment")))));
  }
  detail.push(el("h4", {}, "Attributes"), el("table", { class: "data attrs" }, el("tbody", {},
    Object.entries(span.attributes).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v))))));
  document.getElementById("span-detail").replaceChildren(...detail);
}

function renderEval(e) {
  const verdict = e.passed === null ? el("span", { class: "pill info" }, e.score === null ? "n/a" : e.score.toFixed(2))
    : el("span", { class: `pill ${e.passed ? "good" : "bad"}` }, e.passed ? "pass" : "fail");
  return el("div", { class: "eval", dataset: { evaluator: e.evaluator } }, verdict,
    el("span", {}, el("strong", {}, e.evaluator), e.label ? ` · ${e.label}` : "",
      e.reason ? el("div", { class: "muted" }, e.reason) : null));
}

function renderMessage(message) {
  const parts = (message.parts || []).map((part) => {
    if (part.type === "text") return el("div", {}, part.content);
    if (part.type === "tool_call") return el("div", {}, el("span", { class: "pill" }, `→ ${part.name}`), " ",
      el("code", {}, JSON.stringify(part.arguments)));
    return el("code", {}, JSON.stringify(part));
  });
  return el("div", { class: `message ${message.role}` }, el("span", { class: "role" }, message.role), parts);
}

function jsonBlock(value) {
  let text = value;
  if (typeof value !== "string") text = JSON.stringify(value, null, 2);
  return el("pre", { class: "json" }, text === undefined ? "" : text);
}

/* --- compare ---------------------------------------------------------------------- */

function fillCompareModels() {
  const form = document.getElementById("compare-form");
  const names = [...new Set(state.models.map((m) => m.model))];
  const pick = (variant) => (state.models.find((m) => m.variant === variant) || {}).model;
  for (const [field, variant, fallback] of [["base", "base", 0], ["candidate", "candidate", 1]]) {
    const select = form.elements[field];
    const current = select.value || pick(variant) || names[fallback] || "";
    select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
  }
}

async function runCompare(event) {
  if (event) event.preventDefault();
  const form = document.getElementById("compare-form");
  const out = document.getElementById("compare-result");
  const base = form.elements.base.value;
  const candidate = form.elements.candidate.value;
  if (!base || !candidate) return;
  out.replaceChildren(el("p", { class: "muted" }, "Comparing…"));
  const { since, until } = range();
  try {
    const report = await api("api/compare", { base, candidate, since, until, by: form.elements.by.value });
    out.replaceChildren(renderReport(report));
  } catch (error) {
    out.replaceChildren(el("p", { class: "panel-state" }, `Could not compare: ${error.message}`));
  }
}

const REASON_TONES = { critical_regression: "bad", regression: "bad", insufficient_data: "warn",
                       no_evaluators: "warn", no_data: "warn", score: "info", settled: "good" };
const CLASS_TONES = { regression: "bad", improvement: "good", pass: "good", inconclusive: "warn",
                      insufficient: "", nodata: "" };

function renderReport(report) {
  const head = el("div", { class: "verdict-head", id: "verdict" },
    el("span", { class: `big verdict ${report.verdict}` }, report.verdict),
    el("span", {}, "score ", el("strong", {}, report.score === null ? "–" : report.score.toFixed(1))),
    el("span", { class: "muted" }, `${report.base_model} → ${report.candidate_model}`),
    report.needed_pairs ? el("span", { class: "pill warn" }, `${report.needed_pairs} more pairs needed`) : null);
  const reasons = el("ul", { class: "reasons" }, report.reasons.map((r) => el("li", {},
    el("span", { class: `pill ${REASON_TONES[r.kind] || ""}` }, r.kind.replace(/_/g, " ")), " ", r.message)));
  return el("div", {}, head, report.reasons.length ? reasons : null,
    report.metrics.length ? metricsTable(report.metrics) : el("p", { class: "muted" }, "No metrics yet."));
}

function formatArm(metric, arm) {
  if (!arm || arm.value === null || arm.value === undefined) return "–";
  return metric.kind === "rate" || metric.kind === "win_rate" ? `${(arm.value * 100).toFixed(1)}%`
    : Math.abs(arm.value) >= 100 ? arm.value.toFixed(0) : arm.value.toPrecision(3);
}

function formatDifference(metric, value) {
  if (value === null || value === undefined) return "–";
  const sign = value > 0 ? "+" : "";
  if (metric.relative) return `${sign}${(value * 100).toFixed(1)}%`;
  if (metric.kind === "rate" || metric.kind === "win_rate") return `${sign}${(value * 100).toFixed(1)} pts`;
  return `${sign}${value.toPrecision(3)}`;
}

function intervalBar(metric, scale) {
  const [lo, hi] = metric.difference_interval || [null, null];
  if (lo === null || hi === null || !scale) return el("div", { class: "ci-track" });
  const pos = (v) => `${50 + (Math.max(-scale, Math.min(scale, v)) / scale) * 50}%`;
  const harmful = metric.bad_direction === "down" ? hi < 0 : lo > 0;
  const helpful = metric.bad_direction === "down" ? lo > 0 : hi < 0;
  return el("div", { class: "ci-track" }, el("div", { class: "ci-zero" }),
    el("div", { class: `ci-bar ${harmful ? "bad" : helpful ? "good" : ""}`,
                style: `left:${pos(lo)};width:calc(${pos(hi)} - ${pos(lo)})` }));
}

function metricsTable(metrics) {
  const scales = {};
  for (const m of metrics) {
    for (const v of m.difference_interval || []) {
      if (v !== null) scales[m.metric] = Math.max(scales[m.metric] || 0, Math.abs(v));
    }
  }
  const body = metrics.map((m) => el("tr", { dataset: { metric: m.metric, slice: m.slice } },
    el("td", {}, el("strong", {}, m.metric), m.critical ? el("span", { class: "pill bad" }, "critical") : null),
    el("td", {}, m.slice),
    el("td", { class: "num" }, formatArm(m, m.base)),
    el("td", { class: "num" }, formatArm(m, m.candidate)),
    el("td", { class: `num delta ${CLASS_TONES[m.classification] || ""}` }, formatDifference(m, m.difference)),
    el("td", {}, intervalBar(m, scales[m.metric])),
    el("td", { class: "num" }, m.n),
    el("td", {}, el("span", { class: `pill ${CLASS_TONES[m.classification] || ""}` }, m.classification))));
  return el("div", { class: "table-wrap" }, el("table", { class: "data compare" },
    el("thead", {}, el("tr", {}, ["Metric", "Slice", "Base", "Candidate", "Difference", "95% interval", "n", "Result"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, body)));
}

/* --- wiring -------------------------------------------------------------------------- */

function activeTab() {
  return document.querySelector(".tab.active").dataset.tab;
}

function selectTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const section of document.querySelectorAll(".tab-panel")) {
    section.classList.toggle("hidden", section.id !== `tab-${name}`);
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function showTab(name) {
  selectTab(name);
  return refreshTab(name);
}

async function refreshTab(name) {
  if (name === "overview") return loadPanels();
  if (name === "traces") return loadTraces();
  if (name === "compare") return runCompare();
  return undefined;
}

async function refresh() {
  clearError();
  try {
    state.config = state.config || await api(`${API}/config`);
    if (!document.querySelector(".panel")) buildPanels();
    await loadFilters();
    await refreshTab(activeTab());
  } catch (error) {
    if (!/API key/.test(error.message)) showError(`canarytrace: ${error.message}`);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab).catch((e) => showError(e.message)));
  }
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  for (const select of document.querySelectorAll("#filters select")) select.addEventListener("change", refresh);
  for (const input of document.querySelectorAll("#trace-filters select, #trace-filters input")) {
    input.addEventListener("change", () => loadTraces().catch((e) => showError(e.message)));
  }
  document.getElementById("trace-close").addEventListener("click", () => {
    document.getElementById("trace-view").classList.add("hidden");
    state.traceId = null;
  });
  document.getElementById("compare-form").addEventListener("submit", runCompare);
  const initial = location.hash.slice(1);
  if (["traces", "compare"].includes(initial)) selectTab(initial);
  refresh();
});
