/* canarytrace built-in dashboard: the canary overview (verdict first), time-series panels,
 * trace list and view, compare view, disagreements list and pair view.
 * Talks only to the collector's JSON API (/api/dashboard/*, /api/compare, /api/rollouts,
 * /api/disagreements, /api/pairs). */
"use strict";

const API = "api/dashboard";
const KEY_STORAGE = "canarytrace.apiKey";
const SLICES = "route,cohort";
const PALETTE = ["#2e90fa", "#f5a524", "#12b76a", "#f04438", "#7a5af8", "#06aed4",
                 "#ee46bc", "#667085", "#84cc16", "#b54708"];
const MAX_CANARIES = 3;

const state = { config: null, charts: new Map(), models: [], traceId: null, evaluators: [],
                filterValues: {}, pairFrom: null, pairId: null };

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
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    const error = new Error(detail ? String(detail) : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
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
  for (const name of ["service", "route", "cohort", "model"]) params[name] = form.elements[name].value;
  return params;
}

const UNITS = {
  percentunit: (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`,
  ms: (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${+v.toPrecision(2)} ms`),
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

/* Loads of one view may overlap (a tab click, then a filter change): only the latest one
 * started may draw. ``latest(name)`` returns a check that stays true until the next call. */
const loads = new Map();
function latest(name) {
  const turn = (loads.get(name) || 0) + 1;
  loads.set(name, turn);
  return () => loads.get(name) === turn;
}

/* --- filters ------------------------------------------------------------------ */

async function loadFilters() {
  const params = range();
  const options = await api(`${API}/filters`, params);
  const form = document.getElementById("filters");
  state.filterValues = options.values;
  for (const [name, values] of Object.entries(options.values)) {
    const select = form.elements[name];
    if (!select) continue;
    const current = select.value;
    select.replaceChildren(el("option", { value: "" }, "All"),
      ...values.map((v) => el("option", { value: v, selected: v === current }, v)));
  }
  state.models = options.models || [];
  fillModelPickers();
}

/* --- overview: the canaries first ----------------------------------------------- */

/* Active rollouts (GET /api/rollouts) when there are any, else the base -> candidate model
 * pairs seen in the spans; each with its verdict and its critical metrics per slice. */
async function loadCanaries() {
  const box = document.getElementById("canaries");
  const turn = latest("canaries");
  const seen = await api(`${API}/canaries`, range());
  if (!turn()) return;
  state.evaluators = seen.evaluators || [];
  fillEvaluatorPicker();
  const rollouts = await activeRollouts();
  const items = rollouts.length ? rollouts.map((r) => ({ rollout: r, base: r.base_model, candidate: r.candidate_model }))
    : seen.canaries.slice(0, MAX_CANARIES).map((c) => ({ canary: c, base: c.base_model, candidate: c.candidate_model }));
  if (!items.length) {
    box.replaceChildren(el("div", { class: "card empty-canary" },
      el("h2", {}, "No canary in this range"),
      el("p", { class: "muted" }, "Nothing here has spans of both a base and a candidate model ",
        "(canary.variant). Send traffic through ct.Canary, start a rollout, or pick a longer range.")));
    return;
  }
  const cards = items.map((item) => el("div", { class: "card canary", dataset: { base: item.base, candidate: item.candidate } },
    el("div", { class: "canary-head" }, el("span", { class: "big verdict pending" }, "…"),
      el("div", { class: "canary-title" }, el("strong", {}, `${item.base} → ${item.candidate}`),
        el("span", { class: "muted" }, "computing the verdict…")))));
  if (!turn()) return;
  box.replaceChildren(...cards);
  await Promise.all(items.map(async (item, i) => {
    try {
      const report = await canaryReport(item);
      cards[i].replaceWith(renderCanary(item, report));
    } catch (error) {
      cards[i].querySelector(".canary-title .muted").textContent = `Could not compare: ${error.message}`;
    }
  }));
}

async function activeRollouts() {
  try {
    const { rollouts } = await api("api/rollouts", { state: "all", limit: 20 });
    return rollouts.filter((r) => r.state !== "stopped").slice(0, MAX_CANARIES);
  } catch (error) {
    if (error.status === 404 || error.status === 405) return [];  // a collector without rollouts
    throw error;
  }
}

async function canaryReport(item) {
  if (item.rollout) {
    const status = await api(`api/rollouts/${encodeURIComponent(item.rollout.id)}`);
    item.status = status;
    return status.report;
  }
  const { since, until } = range();
  return api("api/compare", { base: item.base, candidate: item.candidate, since, until, by: SLICES });
}

function renderCanary(item, report) {
  const window = report.window || {};
  const meta = item.rollout
    ? [`rollout ${item.rollout.name || item.rollout.id}`, `${item.rollout.state}${item.status && item.status.final ? " (final)" : ""}`,
       `since ${formatTime(Date.parse(item.rollout.started_at), true)}`, `${item.status ? item.status.pairs : "–"} pairs`]
    : [item.canary.mirrored ? `${item.canary.pairs} mirrored pairs` : "canary split (no mirrored pairs)",
       `${formatTime(Date.parse(window.since), true)} – ${formatTime(Date.parse(window.until), false)}`];
  const head = el("div", { class: "canary-head" },
    el("span", { class: `big verdict ${report.verdict}` }, report.verdict),
    el("div", { class: "canary-title" },
      el("strong", {}, `${report.base_model} → ${report.candidate_model}`),
      el("span", { class: "muted" }, [`score ${report.score === null ? "–" : report.score.toFixed(0)}`, ...meta].join(" · "))),
    el("a", { class: "button ghost", href: compareHash(report.base_model, report.candidate_model) }, "Full comparison"));
  const reasons = report.reasons.slice(0, 5).map((r) => reasonItem(r, report));
  return el("div", { class: "card canary", dataset: { base: report.base_model, candidate: report.candidate_model, verdict: report.verdict } },
    head, reasons.length ? el("ul", { class: "reasons" }, reasons) : null,
    report.reasons.length > 5 ? el("p", { class: "muted more" }, `and ${report.reasons.length - 5} more reasons in the full comparison`) : null,
    criticalMultiples(report));
}

function compareHash(base, candidate) {
  return `#compare?${new URLSearchParams({ base, candidate })}`;
}

function disagreementHash(report, metric, slice, failed) {
  const params = { base: report.base_model, candidate: report.candidate_model, evaluator: metric, slice };
  if (failed !== undefined) params.failed = failed;
  return `#disagreements?${new URLSearchParams(params)}`;
}

function isEvaluator(metric) {
  return state.evaluators.includes(metric);
}

const REASON_TONES = { critical_regression: "bad", regression: "bad", insufficient_data: "warn",
                       no_evaluators: "warn", no_data: "warn", score: "info", settled: "good" };
const CLASS_TONES = { regression: "bad", improvement: "good", pass: "good", inconclusive: "warn",
                      insufficient: "", nodata: "" };

function reasonItem(reason, report) {
  const link = reason.metric && isEvaluator(reason.metric)
    ? el("a", { class: "why", href: disagreementHash(report, reason.metric, reason.slice || "all") }, "see the pairs →")
    : null;
  return el("li", {}, el("span", { class: `pill ${REASON_TONES[reason.kind] || ""}` }, reason.kind.replace(/_/g, " ")),
    " ", reason.message, link ? " " : null, link);
}

const SEVERITY = ["regression", "inconclusive", "insufficient", "nodata", "pass", "improvement"];

/* Each critical metric, base against candidate in every slice, with the difference's interval;
 * the metrics with a regressed slice first. */
function criticalMultiples(report) {
  const worst = (name) => Math.min(...report.metrics.filter((m) => m.metric === name)
    .map((m) => SEVERITY.indexOf(m.classification)).filter((i) => i >= 0));
  const names = [...new Set(report.metrics.filter((m) => m.critical).map((m) => m.metric))]
    .sort((a, b) => worst(a) - worst(b));
  if (!names.length) return el("p", { class: "muted" }, "No critical metric has data yet.");
  return el("div", { class: "multiples" }, names.map((name) => metricCard(report, report.metrics.filter((m) => m.metric === name))));
}

function metricUnit(metric) {
  if (metric.kind === "rate" || metric.kind === "win_rate") return "%";
  if (metric.metric.startsWith("latency")) return "ms";
  if (metric.metric.includes("tokens")) return "tokens";
  return "score";
}

function metricCard(report, rows) {
  const first = rows.find((m) => m.slice === "all") || rows[0];
  const unit = metricUnit(first);
  const scale = intervalScale(rows);
  const evaluator = isEvaluator(first.metric);
  const body = rows.map((m) => el("tr", { dataset: { metric: m.metric, slice: m.slice }, class: evaluator ? "link" : "",
    onclick: evaluator ? () => { location.hash = disagreementHash(report, m.metric, m.slice); } : undefined },
    el("td", { class: "slice", title: m.slice }, m.slice),
    el("td", { class: "num" }, formatArm(m, m.base)),
    el("td", { class: "num" }, formatArm(m, m.candidate)),
    el("td", { class: `num delta ${CLASS_TONES[m.classification] || ""}` }, formatDifference(m, m.difference)),
    el("td", {}, intervalBar(m, scale)),
    el("td", {}, el("span", { class: `pill ${CLASS_TONES[m.classification] || ""}` }, m.classification))));
  return el("div", { class: "metric-card", dataset: { metric: first.metric } },
    el("div", { class: "metric-head" }, el("h3", {}, first.metric),
      el("span", { class: "pill" }, `${first.kind === "rate" ? "rate" : first.kind}, ${unit}`),
      el("span", { class: "muted" }, `bad when it goes ${first.bad_direction}`)),
    el("table", { class: "data mini" },
      el("thead", {}, el("tr", {}, el("th", {}, "Slice"), el("th", { class: "num" }, `Base (${unit})`),
        el("th", { class: "num" }, `Cand. (${unit})`), el("th", { class: "num" }, `Change (${changeUnit(first)})`),
        el("th", {}, "95% interval"), el("th", {}, "Result"))),
      el("tbody", {}, body)));
}

function changeUnit(metric) {
  if (metric.relative) return "%";
  if (metric.kind === "rate" || metric.kind === "win_rate") return "pts";
  return metricUnit(metric);
}

/* --- overview: panels over time -------------------------------------------------- */

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
  const turn = latest("panels");
  await Promise.all(state.config.panels.map(async (panel) => {
    const card = document.querySelector(`.panel[data-panel-id="${panel.id}"]`);
    try {
      const data = await api(`${API}/panels/${panel.id}`, params);
      if (turn()) renderPanel(card, panel, data);
    } catch (error) {
      if (!turn()) return;
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

/* One colour per series label (an evaluator, a model, a route); with several value columns
 * the first is solid and the others dashed, and a column named base is always dashed. */
function timeChart(panel, data) {
  const { label, values } = seriesColumns(data);
  const datasets = new Map();
  const labels = [];
  for (const row of data.rows) {
    const group = label !== null ? row[label] : "";
    if (!labels.includes(group)) labels.push(group);
    for (const i of values) {
      const name = [label !== null ? row[label] : null, values.length > 1 ? data.columns[i] : null]
        .filter(Boolean).join(" · ") || data.columns[i];
      if (!datasets.has(name)) datasets.set(name, { group, column: i, points: [] });
      datasets.get(name).points.push({ x: row[0], y: row[i] });
    }
  }
  const spanMs = data.to_ms - data.from_ms;
  return {
    type: "line",
    data: { datasets: [...datasets.entries()].map(([name, { group, column, points }]) => {
      const colour = PALETTE[labels.indexOf(group) % PALETTE.length];
      const dashed = data.columns[column] === "base" || /p99|retry|output/.test(data.columns[column])
        || (column !== values[0] && data.columns[values[0]] !== "base");
      return {
        label: name, data: points, borderColor: colour, backgroundColor: colour, borderWidth: 2,
        pointRadius: points.length < 4 ? 3 : 0, cubicInterpolationMode: "monotone", spanGaps: true,
        borderDash: dashed ? [5, 4] : [],
      };
    }) },
    options: chartOptions(panel, {
      x: { type: "linear", min: data.from_ms, max: data.to_ms, grid: { display: false },
           title: { display: true, text: "time (local)", font: { size: 11 } },
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
                             title: { display: Boolean(panel.axis), text: panel.axis, font: { size: 11 } },
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
  const turn = latest("traces");
  const { traces } = await api(`${API}/traces`, traceParams());
  if (!turn()) return;  // a newer load (other filters) owns the table
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

function fillModelPickers() {
  const names = [...new Set(state.models.map((m) => m.model))];
  const pick = (variant) => (state.models.find((m) => m.variant === variant) || {}).model;
  for (const formId of ["compare-form", "disagreement-form"]) {
    const form = document.getElementById(formId);
    for (const [field, variant, fallback] of [["base", "base", 0], ["candidate", "candidate", 1]]) {
      const select = form.elements[field];
      const current = select.value || pick(variant) || names[fallback] || "";
      const options = names.includes(current) || !current ? names : [current, ...names];
      select.replaceChildren(...options.map((n) => el("option", { value: n, selected: n === current }, n)));
    }
  }
  fillSlicePicker();
}

function fillEvaluatorPicker() {
  const select = document.getElementById("disagreement-form").elements.evaluator;
  const current = select.value;
  const names = current && !state.evaluators.includes(current) ? [current, ...state.evaluators] : state.evaluators;
  select.replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
}

function fillSlicePicker() {
  const select = document.getElementById("disagreement-form").elements.slice;
  const current = select.value || "all";
  const slices = ["all"];
  for (const dim of ["route", "cohort"]) {
    for (const value of state.filterValues[dim] || []) slices.push(`${dim}=${value}`);
  }
  if (!slices.includes(current)) slices.push(current);
  select.replaceChildren(...slices.map((s) => el("option", { value: s, selected: s === current }, s)));
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
  const turn = latest("compare");
  try {
    const report = await api("api/compare", { base, candidate, since, until, by: form.elements.by.value });
    if (turn()) out.replaceChildren(renderReport(report));
  } catch (error) {
    if (turn()) out.replaceChildren(el("p", { class: "panel-state" }, `Could not compare: ${error.message}`));
  }
}

function renderReport(report) {
  const head = el("div", { class: "verdict-head", id: "verdict" },
    el("span", { class: `big verdict ${report.verdict}` }, report.verdict),
    el("span", {}, "score ", el("strong", {}, report.score === null ? "–" : report.score.toFixed(1))),
    el("span", { class: "muted" }, `${report.base_model} → ${report.candidate_model}`),
    report.needed_pairs ? el("span", { class: "pill warn" }, `${report.needed_pairs} more pairs needed`) : null);
  const reasons = el("ul", { class: "reasons" }, report.reasons.map((r) => reasonItem(r, report)));
  return el("div", {}, head, report.reasons.length ? reasons : null,
    report.metrics.length ? metricsTable(report) : el("p", { class: "muted" }, "No metrics yet."));
}

function formatArm(metric, arm) {
  if (!arm || arm.value === null || arm.value === undefined) return "–";
  const v = arm.value;
  if (metric.kind === "rate" || metric.kind === "win_rate") return `${(v * 100).toFixed(1)}%`;
  if (metric.metric.startsWith("latency")) return formatValue("ms", v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : `${+v.toPrecision(3)}`;
}

function formatDifference(metric, value) {
  if (value === null || value === undefined) return "–";
  const sign = value > 0 ? "+" : "";
  if (metric.relative) return `${sign}${(value * 100).toFixed(1)}%`;
  if (metric.kind === "rate" || metric.kind === "win_rate") return `${sign}${(value * 100).toFixed(1)} pts`;
  return `${sign}${value.toPrecision(3)}`;
}

function intervalScale(metrics) {
  let scale = 0;
  for (const m of metrics) for (const v of m.difference_interval || []) if (v !== null) scale = Math.max(scale, Math.abs(v));
  return scale;
}

function intervalBar(metric, scale) {
  const [lo, hi] = metric.difference_interval || [null, null];
  if (lo === null || hi === null || !scale) return el("div", { class: "ci-track" });
  const pos = (v) => `${50 + (Math.max(-scale, Math.min(scale, v)) / scale) * 50}%`;
  const harmful = metric.bad_direction === "down" ? hi < 0 : lo > 0;
  const helpful = metric.bad_direction === "down" ? lo > 0 : hi < 0;
  return el("div", { class: "ci-track", title: `${formatDifference(metric, lo)} … ${formatDifference(metric, hi)}` },
    el("div", { class: "ci-zero" }),
    el("div", { class: `ci-bar ${harmful ? "bad" : helpful ? "good" : ""}`,
                style: `left:${pos(lo)};width:calc(${pos(hi)} - ${pos(lo)})` }));
}

function metricsTable(report) {
  const metrics = report.metrics;
  const scales = {};
  for (const m of metrics) scales[m.metric] = intervalScale(metrics.filter((x) => x.metric === m.metric));
  const body = metrics.map((m) => el("tr", { dataset: { metric: m.metric, slice: m.slice } },
    el("td", {}, el("strong", {}, m.metric), m.critical ? el("span", { class: "pill bad" }, "critical") : null),
    el("td", {}, m.slice),
    el("td", { class: "num" }, formatArm(m, m.base)),
    el("td", { class: "num" }, formatArm(m, m.candidate)),
    el("td", { class: `num delta ${CLASS_TONES[m.classification] || ""}` }, formatDifference(m, m.difference)),
    el("td", {}, intervalBar(m, scales[m.metric])),
    el("td", { class: "num" }, m.n),
    el("td", {}, el("span", { class: `pill ${CLASS_TONES[m.classification] || ""}` }, m.classification),
      isEvaluator(m.metric) ? el("a", { class: "why", href: disagreementHash(report, m.metric, m.slice) }, " pairs →") : null)));
  return el("div", { class: "table-wrap" }, el("table", { class: "data compare" },
    el("thead", {}, el("tr", {}, ["Metric", "Slice", "Base", "Candidate", "Change", "95% interval", "n", "Result"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, body)),
    el("p", { class: "muted legend" }, "Rates in %, changes in points (pts); latency in ms, its change relative (%); ",
      "tokens per call. n: pairs (or calls per arm when unpaired)."));
}

/* --- disagreements ------------------------------------------------------------------ */

function disagreementParams() {
  const form = document.getElementById("disagreement-form");
  const params = {};
  for (const name of ["base", "candidate", "evaluator", "slice", "failed"]) params[name] = form.elements[name].value;
  return params;
}

function setFormValues(form, params) {
  for (const [name, value] of Object.entries(params)) {
    const field = form.elements[name];
    if (!field) continue;
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === value)) {
      field.append(el("option", { value }, value));
    }
    field.value = value;
  }
}

async function loadDisagreements(event) {
  if (event) {
    event.preventDefault();
    history.replaceState(null, "", `#disagreements?${new URLSearchParams(disagreementParams())}`);
  }
  const out = document.getElementById("disagreement-result");
  const params = disagreementParams();
  if (!params.base || !params.candidate || !params.evaluator) {
    out.replaceChildren(el("p", { class: "muted" }, "Pick a base, a candidate and an evaluator."));
    return;
  }
  out.replaceChildren(el("p", { class: "muted" }, "Looking for pairs…"));
  const turn = latest("disagreements");
  try {
    const found = await api("api/disagreements", { ...params, ...range(), limit: 200 });
    if (turn()) out.replaceChildren(renderDisagreements(found, params));
  } catch (error) {
    if (turn()) out.replaceChildren(el("p", { class: "panel-state" }, `Could not list disagreements: ${error.message}`));
  }
}

function renderDisagreements(found, params) {
  const c = found.counts;
  const summary = el("div", { class: "disagree-summary", id: "disagree-summary" },
    el("div", { class: "count bad" }, el("strong", {}, c.candidate_failed), el("span", {}, "candidate failed where the base passed")),
    el("div", { class: "count good" }, el("strong", {}, c.base_failed), el("span", {}, "base failed where the candidate passed")),
    el("div", { class: "count" }, el("strong", {}, c.pairs), el("span", {}, `pairs scored by ${found.evaluator} on both arms in ${found.slice}`)));
  if (!found.pairs.length) {
    return el("div", {}, summary, el("p", { class: "empty" }, "No pair in this range where the arms disagree this way."));
  }
  const rows = found.pairs.map((p) => el("tr", { class: "link", dataset: { pairId: p.pair_id },
    onclick: () => { state.pairFrom = location.hash; location.hash = `#pair/${encodeURIComponent(p.pair_id)}`; } },
    el("td", {}, formatTime(p.started_ms, true)),
    el("td", {}, p.route || "–"), el("td", {}, p.cohort || "–"),
    el("td", {}, el("span", { class: `pill ${p.failed}` }, `${p.failed} failed`)),
    el("td", {}, verdictPill(p.base), el("div", { class: "muted reason" }, p.base.reason)),
    el("td", {}, verdictPill(p.candidate), el("div", { class: "muted reason" }, p.candidate.reason)),
    el("td", {}, el("a", { href: `#pair/${encodeURIComponent(p.pair_id)}` }, "side by side →"))));
  return el("div", {}, summary, el("div", { class: "table-wrap scroll tall" }, el("table", { class: "data", id: "disagreement-table" },
    el("thead", {}, el("tr", {}, ["Time", "Route", "Cohort", "Disagreement", `Base: ${found.evaluator}`,
      `Candidate: ${found.evaluator}`, ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows))),
    found.pairs.length >= 200 ? el("p", { class: "muted" }, "Showing the newest 200.") : null);
}

function verdictPill(arm) {
  return el("span", { class: `pill ${arm.passed ? "good" : "bad"}` }, arm.passed ? "pass" : "fail");
}

/* --- pair view ---------------------------------------------------------------------- */

async function openPair(pairId) {
  const view = document.getElementById("pair-view");
  view.replaceChildren(el("p", { class: "muted" }, "Loading the pair…"));
  try {
    const pair = await api(`api/pairs/${encodeURIComponent(pairId)}`);
    view.replaceChildren(...renderPair(pair));
  } catch (error) {
    view.replaceChildren(el("p", { class: "panel-state" }, `Could not load pair ${pairId}: ${error.message}`));
  }
}

function renderPair(pair) {
  const back = state.pairFrom
    ? el("a", { class: "button ghost", href: state.pairFrom }, "← Back to the list") : null;
  const head = el("div", { class: "card-head" },
    el("h2", {}, "Pair ", el("code", {}, pair.pair_id)),
    el("div", { class: "facts" },
      pair.route && el("span", { class: "pill info" }, `route ${pair.route}`),
      pair.cohort && el("span", { class: "pill info" }, `cohort ${pair.cohort}`),
      el("span", { class: "pill" }, pair.service),
      el("span", { class: "pill" }, formatTime(pair.started_ms, true))),
    back);
  const input = el("div", { class: "pair-input" },
    el("h4", {}, pair.same_input ? "Input (the same for both arms)" : "Input (the arms were given different inputs)"),
    pair.input_messages.length ? pair.input_messages.map(renderMessage) : el("p", { class: "muted" }, "No input captured."));
  const arms = el("div", { class: "pair-arms" }, pair.arms.map(renderArm));
  const diff = pair.arms.length === 2 ? el("div", { class: "pair-diff" },
    el("h4", {}, `Answer diff: ${pair.arms[0].variant} → ${pair.arms[1].variant}`),
    el("pre", { class: "diff", id: "pair-diff" }, pair.diff.map((run) =>
      run.op === "equal" ? run.text : el(run.op === "insert" ? "ins" : "del", {}, run.text))),
    el("p", { class: "muted legend" }, el("del", {}, "removed"), " in the base's answer, ",
      el("ins", {}, "added"), " in the candidate's.")) : null;
  return [head, input, arms, diff].filter(Boolean);
}

function renderArm(arm) {
  const failed = arm.evals.filter((e) => e.passed === false).length;
  const facts = el("div", { class: "facts" },
    el("span", { class: "pill", title: "latency of the arm's outermost call" }, `latency ${formatDuration(arm.latency_ms)}`),
    el("span", { class: "pill" }, `${arm.input_tokens} in / ${arm.output_tokens} out tokens`),
    el("span", { class: `pill ${arm.parser_errors ? "bad" : ""}` },
      `${arm.parser_errors} parser error${arm.parser_errors === 1 ? "" : "s"}, ${arm.parser_retries} retr${arm.parser_retries === 1 ? "y" : "ies"}`),
    arm.fallback && el("span", { class: "pill warn" }, "fell back to the base"),
    arm.error && el("span", { class: "pill bad" }, arm.status_message || "error"));
  return el("div", { class: `arm ${arm.variant}`, dataset: { variant: arm.variant } },
    el("div", { class: "arm-head" },
      el("span", { class: `pill ${arm.variant}` }, arm.variant || "?"),
      el("strong", {}, arm.model),
      el("span", { class: "muted" }, arm.role),
      el("span", { class: `pill ${failed ? "bad" : "good"}` }, arm.evals.length ? (failed ? `${failed} of ${arm.evals.length} evals failed` : "all evals passed") : "not scored"),
      el("a", { href: "#traces", onclick: (e) => { e.preventDefault(); showTraceFromPair(arm.trace_id); } }, "trace →")),
    facts,
    el("h4", {}, "Answer"),
    arm.output_messages.length ? arm.output_messages.map(renderMessage) : el("p", { class: "muted" }, "No answer captured."),
    el("h4", {}, "Evaluations"),
    arm.evals.length ? arm.evals.map(renderEval) : el("p", { class: "muted" }, "Not scored."));
}

async function showTraceFromPair(traceId) {
  selectTab("traces");
  await loadTraces().catch(() => {});
  await openTrace(traceId).catch((e) => showError(e.message));
}

/* --- wiring: tabs and the address bar ----------------------------------------------------
 * #overview, #traces, #compare?base=&candidate=, #disagreements?base=&candidate=&evaluator=
 * &slice=&failed=, #pair/<pair id>; ?range=<seconds> picks the time range. */

const TABS = ["overview", "traces", "compare", "disagreements", "pair"];

function parseHash() {
  const [path, query] = location.hash.slice(1).split("?");
  const [name, ...rest] = (path || "").split("/");
  return { name: TABS.includes(name) ? name : "overview",
           arg: rest.length ? decodeURIComponent(rest.join("/")) : null,
           params: Object.fromEntries(new URLSearchParams(query || "")) };
}

function activeTab() {
  return document.querySelector(".tab.active").dataset.tab;
}

function selectTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  if (name === "pair") document.querySelector(".tab[data-tab=pair]").classList.remove("hidden");
  for (const section of document.querySelectorAll(".tab-panel")) {
    section.classList.toggle("hidden", section.id !== `tab-${name}`);
  }
}

function tabHash(name) {
  if (name === "disagreements") return `#disagreements?${new URLSearchParams(disagreementParams())}`;
  if (name === "pair" && state.pairId) return `#pair/${encodeURIComponent(state.pairId)}`;
  return `#${name}`;
}

async function route() {
  const { name, arg, params } = parseHash();
  selectTab(name);
  window.scrollTo(0, 0);
  if (name === "compare" && params.base) setFormValues(document.getElementById("compare-form"), params);
  if (name === "disagreements" && params.evaluator) {
    setFormValues(document.getElementById("disagreement-form"), { failed: "candidate", slice: "all", ...params });
  }
  if (name === "pair") {
    state.pairId = arg;
    return arg ? openPair(arg) : undefined;
  }
  return refreshTab(name);
}

async function refreshTab(name) {
  if (name === "overview") return Promise.all([loadCanaries(), loadPanels()]);
  if (name === "traces") return loadTraces();
  if (name === "compare") return runCompare();
  if (name === "disagreements") return loadDisagreements();
  if (name === "pair") return state.pairId ? openPair(state.pairId) : undefined;
  return undefined;
}

async function refresh() {
  clearError();
  try {
    state.config = state.config || await api(`${API}/config`);
    if (!document.querySelector(".panel")) buildPanels();
    await loadFilters();
    if (!state.evaluators.length && activeTab() !== "overview") {
      state.evaluators = (await api(`${API}/canaries`, range())).evaluators || [];
      fillEvaluatorPicker();
    }
    await route();
  } catch (error) {
    if (!/API key/.test(error.message)) showError(`canarytrace: ${error.message}`);
  }
}

function initialRange() {
  const wanted = new URLSearchParams(location.search).get("range");
  const select = document.querySelector("#filters [name=range]");
  if (!wanted || !/^\d+$/.test(wanted)) return;
  if (![...select.options].some((o) => o.value === wanted)) {
    const seconds = Number(wanted);
    const label = seconds % 3600 === 0 ? `${seconds / 3600} h` : `${Math.round(seconds / 60)} min`;
    select.append(el("option", { value: wanted }, `Last ${label}`));
  }
  select.value = wanted;
}

document.addEventListener("DOMContentLoaded", () => {
  initialRange();
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      const hash = tabHash(tab.dataset.tab);
      if (location.hash === hash) route().catch((e) => showError(e.message));
      else location.hash = hash;
    });
  }
  window.addEventListener("hashchange", () => route().catch((e) => showError(e.message)));
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
  document.getElementById("disagreement-form").addEventListener("submit", loadDisagreements);
  refresh();
});
