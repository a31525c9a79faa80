/* rxaudit dashboard: reads the packed payload and draws the page.
   No network: the data, Plotly and this script are all inside the page. */
"use strict";

const MAX_ROWS = 200;
const DAY_MS = 86400000;
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
// Rules whose every case is info are listed and reviewable, never counted in rates.
const counted = (d) => d.rules.filter((r) => r.severity !== "info");
// Plotly renders a subset of HTML in labels (links among it): a label from the
// data is shown as text, never as markup.
const plain = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const KIND_NAMES = ["fill", "session", "event", "diagnosis", "assessment"];

const state = { data: null, rule: "", quarter: "", filtered: [] };

function el(id) { return document.getElementById(id); }

function text(tag, value, cls) {
  const node = document.createElement(tag);
  node.textContent = value === null || value === undefined ? "" : String(value);
  if (cls) node.className = cls;
  return node;
}

function pct(x) { return x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%"; }

function isoDay(days) {
  if (days === null || days === undefined) return "";
  return new Date(days * DAY_MS).toISOString().slice(0, 10);
}

// The cases travel as chunks of rows (one array per case, its fields named
// once): turn them into one array per field.
function caseColumns(packed) {
  const cases = Object.fromEntries(packed.fields.map((k) => [k, []]));
  const columns = packed.fields.map((k) => cases[k]);
  for (const chunk of packed.chunks) {
    for (const row of chunk) {
      for (let f = 0; f < columns.length; f++) columns[f].push(row[f]);
    }
  }
  return cases;
}

async function unpack() {
  const b64 = el("payload").textContent.trim();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const d = JSON.parse(await new Response(stream).text());
  if (d.cases) d.cases = caseColumns(d.cases);
  return d;
}

function measureRows(d) {
  const m = d.measures, rows = [];
  for (let i = 0; i < m.measure_id.length; i++) {
    rows.push({ id: m.measure_id[i], kind: m.kind[i], period: m.period[i], site: m.site_id[i],
      den: m.denominator[i], num: m.numerator[i], rate: m.rate[i], low: m.ci_low[i],
      high: m.ci_high[i], outlier: m.outlier[i], suppressed: m.suppressed[i] });
  }
  return rows;
}

function drawMeta(d) {
  const m = d.meta, c = m.counts || {};
  const parts = [`Run ${m.run_id}`, `data as of ${m.as_of || "—"}`,
    `policy ${(m.policy && m.policy.version) || "—"}`];
  if (!m.shared) {
    parts.push(`${c.open || 0} open, ${c.excluded || 0} excluded cases; ` +
      `${c.new || 0} new, ${c.persisting || 0} persisting, ${c.resolved || 0} resolved since the previous run` +
      ` (${c.resolved_data_corrected || 0} data corrected, ${c.resolved_policy_change || 0} by the policy change)` +
      `; ${c.info || 0} open info case(s), not counted in rates`);
  } else {
    parts.push("aggregates only, counts from 1 to 10 suppressed");
  }
  el("meta").textContent = parts.join(" · ");
}

function drawHeadline(d, rows) {
  const rules = counted(d).map((r) => r.id);
  const all = rows.filter((r) => r.kind === "rule" && r.site === "ALL");
  const periods = [...new Set(all.map((r) => r.period))].sort();
  const latest = periods[periods.length - 1];
  const box = el("headline");
  box.textContent = "";
  for (const rule of counted(d)) {
    const r = all.find((x) => x.id === rule.id && x.period === latest);
    const card = document.createElement("div");
    card.className = "card" + (state.rule === rule.id ? " selected" : "");
    card.dataset.rule = rule.id;
    card.appendChild(text("div", rule.id, "rule"));
    card.appendChild(text("div", r ? pct(r.rate) : "—", "rate"));
    card.appendChild(text("div", r && r.num !== null && r.den !== null
      ? `${r.num} of ${r.den} patients, ${latest}` : `${latest || ""}`, "sub"));
    card.title = rule.title;
    card.addEventListener("click", () => selectRule(rule.id));
    box.appendChild(card);
  }
  const traces = rules.map((id) => {
    const series = all.filter((r) => r.id === id).sort((a, b) => a.period.localeCompare(b.period));
    return { type: "scatter", mode: "lines+markers", name: id, x: series.map((r) => r.period),
      y: series.map((r) => r.rate), hovertemplate: "%{x}: %{y:.1%}<extra>" + id + "</extra>" };
  });
  Plotly.newPlot("trend", traces, {
    margin: { t: 10, r: 10, b: 40, l: 50 }, yaxis: { tickformat: ".0%", rangemode: "tozero" },
    legend: { font: { size: 10 } }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
  }, { displayModeBar: false, responsive: true });
  return periods;
}

function drawHeatmap(d, rows) {
  const q = state.quarter;
  const cells = rows.filter((r) => r.kind === "rule" && r.period === q && r.site !== "ALL");
  const sites = [...new Set(cells.map((r) => r.site))].sort();
  const rules = counted(d).map((r) => r.id);
  const z = [], hover = [], annotations = [];
  rules.forEach((rule, yi) => {
    const zr = [], hr = [];
    sites.forEach((site, xi) => {
      const c = cells.find((r) => r.id === rule && r.site === site);
      zr.push(c && c.rate !== null ? c.rate : null);
      hr.push(!c ? "no data" : c.suppressed && c.rate === null ? "suppressed (small cell)"
        : `${c.num} of ${c.den} (${pct(c.rate)}; 95% CI ${pct(c.low)}–${pct(c.high)})`);
      if (c && c.outlier) {
        annotations.push({ x: site, y: rule, text: "▲", showarrow: false,
          font: { color: "#a3261b", size: 16 } });
      }
    });
    z.push(zr); hover.push(hr);
  });
  Plotly.newPlot("heatmap", [{
    type: "heatmap", x: sites, y: rules, z: z, text: hover, colorscale: "Blues", reversescale: true,
    hovertemplate: "%{y} at %{x}: %{text}<extra></extra>", zmin: 0,
    zmax: Math.max(0.01, ...z.flat().filter((v) => v !== null)), colorbar: { tickformat: ".1%" },
  }], { margin: { t: 10, r: 10, b: 60, l: 140 }, annotations: annotations,
        yaxis: { autorange: "reversed" } }, { displayModeBar: false, responsive: true });
  el("heatmap").on("plotly_click", (ev) => {
    if (!ev.points || !ev.points.length || d.meta.shared) return;
    selectRule(ev.points[0].y, ev.points[0].x);
  });
}

function fillSelect(id, values, labelAll) {
  const s = el(id);
  const keep = s.value;
  s.textContent = "";
  s.appendChild(new Option(labelAll, ""));
  for (const v of values) s.appendChild(new Option(v.label || v, v.value !== undefined ? v.value : v));
  if ([...s.options].some((o) => o.value === keep)) s.value = keep;
}

function setupFilters(d) {
  const L = d.lookups;
  fillSelect("f-rule", d.rules.map((r) => ({ value: r.id, label: r.id })), "all rules");
  fillSelect("f-site", L.site.map((s, i) => ({ value: String(i), label: s })), "all sites");
  fillSelect("f-prescriber", L.prescriber.map((s, i) => ({ value: String(i), label: s }))
    .sort((a, b) => a.label.localeCompare(b.label)), "all prescribers");
  fillSelect("f-severity", SEVERITIES, "all severities");
  fillSelect("f-status", ["open", "excluded", "resolved"], "all statuses");
  fillSelect("f-review", [{ value: "-", label: "not reviewed" }, "confirmed", "justified",
    "false_positive", "reopened"], "any review");
  for (const id of ["f-rule", "f-site", "f-prescriber", "f-severity", "f-status", "f-review"]) {
    el(id).addEventListener("change", () => { state.rule = el("f-rule").value; drawCases(d); });
  }
}

function drawCases(d) {
  const c = d.cases, L = d.lookups;
  const f = { rule: el("f-rule").value, site: el("f-site").value, prescriber: el("f-prescriber").value,
    severity: el("f-severity").value, status: el("f-status").value, review: el("f-review").value };
  const out = [];
  for (let i = 0; i < c.id.length; i++) {
    if (f.rule && c.rule[i] !== f.rule) continue;
    if (f.site && String(c.site[i]) !== f.site) continue;
    if (f.prescriber && String(c.prescriber[i]) !== f.prescriber) continue;
    if (f.severity && c.severity[i] !== f.severity) continue;
    if (f.status && c.status[i] !== f.status) continue;
    if (f.review === "-" ? c.review[i] !== "" : f.review && c.review[i] !== f.review) continue;
    out.push(i);
  }
  state.filtered = out;
  el("case-count").textContent = out.length > MAX_ROWS
    ? `${out.length.toLocaleString()} cases; showing the first ${MAX_ROWS}. Narrow the filters to see others.`
    : `${out.length.toLocaleString()} case${out.length === 1 ? "" : "s"}.`;
  const body = el("case-table").tBodies[0];
  body.textContent = "";
  for (const i of out.slice(0, MAX_ROWS)) {
    const tr = document.createElement("tr");
    tr.dataset.index = String(i);
    tr.appendChild(text("td", isoDay(c.date[i])));
    tr.appendChild(text("td", c.rule[i]));
    tr.appendChild(text("td", c.severity[i], "sev-" + c.severity[i]));
    tr.appendChild(text("td", c.status[i]));
    tr.appendChild(text("td", c.review[i]));
    tr.appendChild(text("td", c.patient[i]));
    tr.appendChild(text("td", L.site[c.site[i]] || ""));
    tr.appendChild(text("td", c.summary[i]));
    tr.addEventListener("click", () => openCase(d, i));
    body.appendChild(tr);
  }
  document.querySelectorAll(".card").forEach((card) =>
    card.classList.toggle("selected", card.dataset.rule === f.rule));
}

function selectRule(rule, site) {
  const d = state.data;
  if (d.meta.shared) return;
  el("f-rule").value = rule;
  if (site !== undefined) {
    const idx = d.lookups.site.indexOf(site);
    el("f-site").value = idx >= 0 ? String(idx) : "";
  }
  state.rule = rule;
  drawCases(d);
  el("cases-section").scrollIntoView({ behavior: "smooth" });
}

function openCase(d, i) {
  const c = d.cases, L = d.lookups;
  const rule = d.rules.find((r) => r.id === c.rule[i]) || {};
  el("panel").hidden = false;
  el("panel-title").textContent = `${c.rule[i]}: ${rule.title || ""}`;
  const facts = el("panel-facts");
  facts.textContent = "";
  const rows = [["case", c.id[i]], ["patient", c.patient[i]], ["case date", isoDay(c.date[i])],
    ["severity", c.severity[i]], ["status", c.status[i]], ["review", c.review[i] || "not reviewed"],
    ["site", L.site[c.site[i]] || ""], ["prescriber", L.prescriber[c.prescriber[i]] || ""],
    ["first / last seen", `${c.first[i]} / ${c.last[i]}`], ["summary", c.summary[i]]];
  for (const [k, v] of rows) { facts.appendChild(text("dt", k)); facts.appendChild(text("dd", v)); }
  el("panel-guideline").textContent = rule.guideline || "";

  const ev = c.evidence[i] || [], bars = { y: [], base: [], x: [], text: [] };
  const points = {};
  for (let k = 0; k < ev.length; k += 4) {
    const kind = ev[k], start = ev[k + 1], end = ev[k + 2], label = plain(L.label[ev[k + 3]]);
    if (kind === 0) {
      bars.y.push(label); bars.base.push(isoDay(start));
      bars.x.push((end - start + 1) * DAY_MS);
      bars.text.push(`${isoDay(start)} to ${isoDay(end)}`);
    } else {
      const name = KIND_NAMES[kind];
      points[name] = points[name] || { x: [], y: [], text: [] };
      points[name].x.push(isoDay(start)); points[name].y.push(label); points[name].text.push(label);
    }
  }
  const traces = [];
  if (bars.y.length) {
    traces.push({ type: "bar", orientation: "h", name: "fills (covered days)", y: bars.y,
      base: bars.base, x: bars.x, text: bars.text, hovertemplate: "%{y}<br>%{text}<extra></extra>",
      marker: { color: "#6f9ec2" }, textposition: "none" });
  }
  const symbols = { session: "line-ns-open", event: "diamond", diagnosis: "square",
    assessment: "circle" };
  for (const [name, p] of Object.entries(points)) {
    traces.push({ type: "scatter", mode: "markers", name: name + "s", x: p.x, y: p.y, text: p.text,
      marker: { symbol: symbols[name], size: name === "session" ? 14 : 10,
        line: { width: 2 } }, hovertemplate: "%{x}: %{text}<extra></extra>" });
  }
  const shapes = [];
  if (c.index[i] !== null && c.index[i] !== undefined) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: isoDay(c.index[i]),
      x1: isoDay(c.index[i]), y0: 0, y1: 1, line: { color: "#a3261b", dash: "dot" } });
  }
  shapes.push({ type: "line", xref: "x", yref: "paper", x0: isoDay(c.date[i]), x1: isoDay(c.date[i]),
    y0: 0, y1: 1, line: { color: "#1d2a33", width: 1 } });
  Plotly.newPlot("timeline", traces, {
    margin: { t: 10, r: 10, b: 40, l: 10 }, xaxis: { type: "date" }, barmode: "overlay",
    yaxis: { automargin: true },
    shapes: shapes, showlegend: true, legend: { orientation: "h", y: -0.2 },
    annotations: [{ x: isoDay(c.date[i]), y: 1, yref: "paper", text: "case date",
      showarrow: false, yanchor: "bottom", font: { size: 10 } }],
  }, { displayModeBar: false, responsive: true });
  el("panel").scrollIntoView({ behavior: "smooth" });
}

function drawQuality(d) {
  const q = d.quality, body = el("quality").tBodies[0];
  body.textContent = "";
  for (let i = 0; i < q.batch_id.length; i++) {
    const tr = document.createElement("tr");
    tr.appendChild(text("td", q.batch_id[i]));
    tr.appendChild(text("td", q.as_of[i]));
    tr.appendChild(text("td", q.status[i], q.status[i] === "loaded" ? "ok" : "bad"));
    const count = (v) => (v === null ? "not shared" : Number(v).toLocaleString());
    tr.appendChild(text("td", count(q.rows_in[i]), "n"));
    tr.appendChild(text("td", count(q.rows_quarantined[i]), "n"));
    tr.appendChild(text("td", q.gx_success[i] === null ? "—" : q.gx_success[i]
      ? "all expectations met" : "some expectations failed", q.gx_success[i] === false ? "bad" : ""));
    body.appendChild(tr);
  }
}

async function main() {
  const d = await unpack();
  state.data = d;
  drawMeta(d);
  const rows = measureRows(d);
  const periods = drawHeadline(d, rows);
  fillSelect("quarter", periods.slice().reverse(), "");
  el("quarter").remove(0);
  state.quarter = periods[periods.length - 1] || "";
  el("quarter").value = state.quarter;
  el("quarter").addEventListener("change", () => { state.quarter = el("quarter").value; drawHeatmap(d, rows); });
  drawHeatmap(d, rows);
  if (d.meta.shared) {
    el("cases-section").remove();
    el("panel").remove();
  } else {
    setupFilters(d);
    drawCases(d);
    el("panel-close").addEventListener("click", () => { el("panel").hidden = true; });
  }
  drawQuality(d);
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  el("meta").textContent = "The dashboard could not be drawn: " + err;
  throw err;
});
