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

function change(h) {
  return h.change_points === null || h.change_points === undefined ? "—"
    : (h.change_points > 0 ? "+" : "") + h.change_points.toFixed(1) + " pts";
}

// The headlines as audit/overview.py ranks them: severity first, then rate.
function drawHeadline(d) {
  const o = d.overview, box = el("headline");
  box.textContent = "";
  const table = document.createElement("table");
  table.className = "ranked";
  const head = ["#", "rule", "severity", "rate now", d.meta.shared ? null : "after review",
    "previous quarter", "change"].filter((x) => x !== null);
  const tr0 = document.createElement("tr");
  for (const h of head) tr0.appendChild(text("th", h));
  table.createTHead().appendChild(tr0);
  const body = table.createTBody();
  for (const h of o.headlines) {
    const tr = document.createElement("tr");
    tr.className = "headline" + (state.rule === h.rule_id ? " selected" : "");
    tr.dataset.rule = h.rule_id;
    tr.appendChild(text("td", h.rank, "n"));
    const name = document.createElement("td");
    const sw = text("span", "", "swatch");
    sw.style.background = h.colour;
    name.appendChild(sw);
    name.appendChild(text("span", h.title, "title"));
    name.appendChild(text("span", h.rule_id, "code"));
    if (h.maturing_from) {
      name.appendChild(text("div", `maturing: cases dated from ${h.maturing_from} are raised up to ` +
        `${h.matures_days} days later, so ${h.period} may still rise`, "maturing"));
    }
    tr.appendChild(name);
    tr.appendChild(text("td", h.severity, "sev-" + h.top_severity));
    const now = text("td", pct(h.rate), "n");
    now.appendChild(text("div", h.numerator === null || h.numerator === undefined
      ? `${h.period || ""}` : `${h.numerator} of ${h.denominator}, ${h.period}`, "sub"));
    tr.appendChild(now);
    if (!d.meta.shared) {
      const after = text("td", pct(h.rate_after_review), "n");
      after.appendChild(text("div", h.numerator_after_review === null ? "" : `${h.numerator_after_review}`, "sub"));
      tr.appendChild(after);
    }
    const prev = text("td", pct(h.previous_rate), "n");
    prev.appendChild(text("div", (h.previous_period || "") + (h.previous_maturing_from ? " (maturing)" : ""), "sub"));
    tr.appendChild(prev);
    tr.appendChild(text("td", change(h), "n"));
    tr.addEventListener("click", () => selectRule(h.rule_id));
    body.appendChild(tr);
  }
  box.appendChild(table);
  const t = o.trend;
  const traces = t.series.map((line) => ({ type: "scatter", mode: "lines+markers",
    name: plain(line.title), x: t.periods, y: line.rates, line: { color: line.colour },
    marker: { color: line.colour }, hovertemplate: "%{x}: %{y:.1%}<extra>" + plain(line.rule_id) + "</extra>" }));
  Plotly.newPlot("trend", traces, {
    margin: { t: 10, r: 10, b: 40, l: 50 }, yaxis: { tickformat: ".0%", rangemode: "tozero" },
    legend: { font: { size: 10 } }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
  }, { displayModeBar: false, responsive: true });
  return o.periods;
}

// The heat map of the chosen quarter as audit/overview.py defines its cells.
function drawHeatmap(d) {
  const map = d.overview.heat[state.quarter];
  if (!map) return;
  const sites = map.sites.concat(["ALL"]);
  const z = [], labels = [], hover = [], annotations = [];
  const ys = map.rules.map((line) => plain(line.title) + (line.maturing_from ? " (maturing)" : ""));
  map.rules.forEach((line, yi) => {
    const zr = [], lr = [], hr = [];
    line.cells.forEach((c, xi) => {
      zr.push(c.rate === null ? null : c.rate);
      const cell = c.suppressed && c.numerator === null ? "suppressed"
        : c.denominator === null ? "—" : `${c.numerator}/${c.denominator}<br>${pct(c.rate)}`;
      lr.push(cell + (c.outlier ? " ▲" : ""));
      hr.push(c.suppressed && c.rate === null ? "suppressed (small cell)"
        : c.denominator === null ? "no data" : `${c.numerator} of ${c.denominator} (${pct(c.rate)})` +
          (c.numerator_after_review === null ? "" : `; after review ${c.numerator_after_review} (${pct(c.rate_after_review)})`));
      if (c.outlier) annotations.push({ x: sites[xi], y: ys[yi], text: "", showarrow: false,
        bordercolor: "#a3261b", borderwidth: 2, width: 60, height: 30 });
    });
    z.push(zr); labels.push(lr); hover.push(hr);
  });
  el("heat-quarter").textContent = `${map.period} (case dates ${map.from} to ${map.to})`;
  Plotly.newPlot("heatmap", [{
    type: "heatmap", x: sites.map((s) => (s === "ALL" ? "all sites" : plain(s))), y: ys, z: z,
    text: labels, texttemplate: "%{text}", textfont: { size: 11 }, customdata: hover,
    colorscale: [[0, "#ffffff"], [0.2, "#e8f0f8"], [0.4, "#c6dbef"], [0.6, "#9ecae1"], [0.8, "#5a9bcc"], [1, "#2b6aa6"]],
    hovertemplate: "%{y} at %{x}: %{customdata}<extra></extra>", zmin: 0,
    zmax: Math.max(0.01, ...z.flat().filter((v) => v !== null)), colorbar: { tickformat: ".1%" },
  }], { margin: { t: 10, r: 10, b: 60, l: 300 }, annotations: annotations,
        yaxis: { autorange: "reversed", automargin: true } }, { displayModeBar: false, responsive: true });
  el("heatmap").removeAllListeners && el("heatmap").removeAllListeners("plotly_click");
  el("heatmap").on("plotly_click", (ev) => {
    if (!ev.points || !ev.points.length || d.meta.shared) return;
    const p = ev.points[0], line = map.rules[p.pointIndex[0]], site = sites[p.pointIndex[1]];
    selectRule(line.rule_id, site === "ALL" ? "" : site, map.period);
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
  fillSelect("f-rule", d.rules.map((r) => ({ value: r.id, label: `${r.title} (${r.id})` })), "all rules");
  fillSelect("f-site", L.site.map((s, i) => ({ value: String(i), label: s })), "all sites");
  fillSelect("f-prescriber", L.prescriber.map((s, i) => ({ value: String(i), label: s }))
    .sort((a, b) => a.label.localeCompare(b.label)), "all prescribers");
  fillSelect("f-severity", SEVERITIES, "all severities");
  // excluded cases (hospice, an approved trial...) only when asked for
  fillSelect("f-status", ["open", "resolved", "excluded", { value: "*", label: "all, excluded too" }],
    "open and resolved");
  fillSelect("f-review", [{ value: "-", label: "not reviewed" }, "confirmed", "justified",
    "false_positive", "reopened"], "any review");
  fillSelect("f-quarter", d.overview.periods.slice().reverse(), "any quarter");
  for (const id of ["f-rule", "f-site", "f-prescriber", "f-severity", "f-status", "f-review", "f-quarter"]) {
    el(id).addEventListener("change", () => { state.rule = el("f-rule").value; drawCases(d); });
  }
}

function drawCases(d) {
  const c = d.cases, L = d.lookups;
  const f = { rule: el("f-rule").value, site: el("f-site").value, prescriber: el("f-prescriber").value,
    severity: el("f-severity").value, status: el("f-status").value, review: el("f-review").value,
    quarter: el("f-quarter").value };
  const q = f.quarter ? d.overview.heat[f.quarter] : null;
  const lo = q ? Date.parse(q.from) / DAY_MS : null, hi = q ? Date.parse(q.to) / DAY_MS : null;
  const out = [];
  for (let i = 0; i < c.id.length; i++) {
    if (f.rule && c.rule[i] !== f.rule) continue;
    if (f.site && String(c.site[i]) !== f.site) continue;
    if (f.prescriber && String(c.prescriber[i]) !== f.prescriber) continue;
    if (f.severity && c.severity[i] !== f.severity) continue;
    if (f.status === "" ? c.status[i] === "excluded" : f.status !== "*" && c.status[i] !== f.status) continue;
    if (f.review === "-" ? c.review[i] !== "" : f.review && c.review[i] !== f.review) continue;
    if (q && (c.date[i] < lo || c.date[i] > hi)) continue;
    out.push(i);
  }
  out.sort((a, b) => c.date[b] - c.date[a] || a - b); // newest case date first
  state.filtered = out;
  el("case-count").textContent = out.length > MAX_ROWS
    ? `${out.length.toLocaleString()} cases; showing the first ${MAX_ROWS}. Narrow the filters to see others.`
    : `${out.length.toLocaleString()} case${out.length === 1 ? "" : "s"}.`;
  const body = el("case-table").tBodies[0];
  body.textContent = "";
  for (const i of out.slice(0, MAX_ROWS)) {
    const tr = document.createElement("tr");
    tr.dataset.index = String(i);
    tr.appendChild(text("td", isoDay(c.date[i]), "nowrap"));
    tr.appendChild(text("td", c.rule[i], "nowrap"));
    tr.appendChild(text("td", c.severity[i], "sev-" + c.severity[i]));
    tr.appendChild(text("td", c.status[i]));
    tr.appendChild(text("td", c.review[i]));
    tr.appendChild(text("td", c.patient[i], "nowrap"));
    tr.appendChild(text("td", L.site[c.site[i]] || "", "nowrap"));
    tr.appendChild(text("td", c.summary[i]));
    tr.addEventListener("click", () => openCase(d, i));
    body.appendChild(tr);
  }
  document.querySelectorAll("tr.headline").forEach((row) =>
    row.classList.toggle("selected", row.dataset.rule === f.rule));
  drawFilterSummary(d, f);
}

// What the case list shows, in words (printed on the first page).
function drawFilterSummary(d, f) {
  const parts = [];
  const name = (id) => el(id).options[el(id).selectedIndex].text;
  for (const [id, key] of [["f-rule", "rule"], ["f-site", "site"], ["f-prescriber", "prescriber"],
    ["f-severity", "severity"], ["f-status", "status"], ["f-review", "review"], ["f-quarter", "quarter"]]) {
    if (f[key]) parts.push(`${key}: ${name(id)}`);
  }
  el("filter-summary").textContent = `Heat map quarter: ${state.quarter || "—"}. Case list: ` +
    (parts.length ? parts.join("; ") : "no filter") + ".";
}

function selectRule(rule, site, quarter) {
  const d = state.data;
  if (d.meta.shared) return;
  el("f-rule").value = rule;
  if (site !== undefined) {
    const idx = d.lookups.site.indexOf(site);
    el("f-site").value = idx >= 0 ? String(idx) : "";
  }
  if (quarter !== undefined) el("f-quarter").value = quarter;
  state.rule = rule;
  drawCases(d);
  el("cases-section").scrollIntoView({ behavior: "smooth" });
}

function openCase(d, i) {
  const c = d.cases, L = d.lookups;
  const rule = d.rules.find((r) => r.id === c.rule[i]) || {};
  el("panel").hidden = false;
  el("panel-title").textContent = `${rule.title || c.rule[i]} (${c.rule[i]})`;
  const facts = el("panel-facts");
  facts.textContent = "";
  const seen = (run) => (d.overview.runs[run] ? `${d.overview.runs[run]} (run ${run})` : run);
  const value = { case_id: c.id[i], patient_id: c.patient[i], case_date: isoDay(c.date[i]),
    severity: c.severity[i], status: c.status[i], review_status: c.review[i] || "not reviewed",
    site_id: L.site[c.site[i]] || "", prescriber_id: L.prescriber[c.prescriber[i]] || "not recorded",
    first_seen: seen(c.first[i]), last_seen: seen(c.last[i]), summary: c.summary[i] };
  for (const [label, key] of d.overview.facts) {
    facts.appendChild(text("dt", label));
    facts.appendChild(text("dd", value[key] || "not recorded", key === "summary" ? "" : "nowrap"));
  }
  facts.appendChild(text("dt", "Evidence rows"));
  facts.appendChild(text("dd", (c.evidence_ids[i] || "").split(";").join(", "), "evidence"));
  el("panel-step").textContent = c.step[i] >= 0 ? L.step[c.step[i]] : "No pathway row for this patient.";
  el("panel-step-reason").textContent = c.step[i] >= 0 && c.step_reason && c.step_reason[i] ? "Why: " + c.step_reason[i] : "";
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
  const notes = [{ x: isoDay(c.date[i]), y: 1, yref: "paper", text: "case date " + isoDay(c.date[i]),
    showarrow: false, yanchor: "bottom", xanchor: "left", font: { size: 11 } }];
  if (c.index[i] !== null && c.index[i] !== undefined) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: isoDay(c.index[i]),
      x1: isoDay(c.index[i]), y0: 0, y1: 1, line: { color: "#a3261b", dash: "dot" } });
    notes.push({ x: isoDay(c.index[i]), y: 1.09, yref: "paper", text: "PTSD index date " + isoDay(c.index[i]),
      showarrow: false, yanchor: "bottom", xanchor: "right", font: { size: 11, color: "#a3261b" } });
  }
  shapes.push({ type: "line", xref: "x", yref: "paper", x0: isoDay(c.date[i]), x1: isoDay(c.date[i]),
    y0: 0, y1: 1, line: { color: "#1d2a33", width: 1 } });
  Plotly.newPlot("timeline", traces, {
    margin: { t: 44, r: 30, b: 40, l: 10 }, xaxis: { type: "date" }, barmode: "overlay",
    yaxis: { automargin: true },
    shapes: shapes, showlegend: true, legend: { orientation: "h", y: -0.2 },
    annotations: notes,
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
  const periods = drawHeadline(d);
  fillSelect("quarter", periods.slice().reverse(), "");
  el("quarter").remove(0);
  state.quarter = periods[periods.length - 1] || "";
  el("quarter").value = state.quarter;
  el("quarter").addEventListener("change", () => {
    state.quarter = el("quarter").value; drawHeatmap(d);
    if (!d.meta.shared) drawCases(d);
  });
  drawHeatmap(d);
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
