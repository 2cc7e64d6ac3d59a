// memento eval view: filter, sort, search and j/k over the problem table; a problem's page built from
// the embedded JSON when opened (block bodies only when expanded). No network: everything is inline.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const byId = new Map(data.problems.map((p) => [p.id, p]));
  const tbody = document.querySelector("#problems tbody");
  const rows = Array.from(tbody.rows);
  const pane = document.getElementById("problem");
  const $ = (id) => document.getElementById(id);
  let current = null;
  const several = data.runs.length > 1;
  const seriesOf = (run, mode) => (several ? run + " · " + mode : mode);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  // ---- the table: filters, search, sort --------------------------------------------------------
  function verdictsOf(row, mode) {
    return row.dataset.verdicts.split(" ").filter((v) => v && (!mode || v.startsWith(mode + ":")))
      .map((v) => v.slice(v.lastIndexOf(":") + 1));
  }

  function applyFilters() {
    const query = $("search").value.trim().toLowerCase();
    const verdict = $("verdict").value, mode = $("verdict-mode").value;
    const compare = $("compare").value, subject = $("subject").value;
    const changed = $("changed") ? $("changed").value : "";
    let shown = 0;
    for (const row of rows) {
      const problem = byId.get(row.dataset.problemId);
      const verdicts = verdictsOf(row, mode);
      let keep = true;
      if (verdict === "any-wrong") keep = verdicts.includes("wrong");
      else if (verdict === "all-correct") keep = verdicts.length > 0 && verdicts.every((v) => v === "correct");
      else if (verdict === "all-wrong") keep = verdicts.length > 0 && verdicts.every((v) => v === "wrong");
      if (keep && compare) keep = row.dataset.worse.split(" ").includes(compare);
      if (keep && changed) keep = row.dataset.changed.split(" ").some((m) => m && (!mode || m === mode));
      if (keep && subject) keep = row.dataset.subject === subject;
      if (keep && query) keep = (problem.id + "\n" + problem.text).toLowerCase().includes(query);
      row.hidden = !keep;
      shown += keep ? 1 : 0;
    }
    $("count").textContent = shown + " of " + rows.length + " problems";
  }

  let sortState = { column: -1, ascending: true };
  function sortBy(column) {
    sortState = { column, ascending: sortState.column === column ? !sortState.ascending : true };
    const key = (row) => {
      const cell = row.cells[column];
      const value = cell.dataset.key !== undefined ? cell.dataset.key : cell.textContent;
      const number = parseFloat(value);
      return value !== "" && !isNaN(number) && cell.dataset.key !== undefined ? number : value;
    };
    const sorted = rows.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sortState.ascending ? order : -order;
    });
    for (const row of sorted) tbody.append(row);
  }

  // ---- a problem's page ------------------------------------------------------------------------
  function blockLine(segment, index) {
    const details = el("details", { class: "block" });
    const memento = segment.memento === null ? "(no memento)" : segment.memento.trim();
    details.append(el("summary", {}, "block " + (index + 1) + " · " + segment.text.length + " chars · ",
      el("span", { class: "memento" }, memento)));
    details.addEventListener("toggle", () => {
      if (details.open && !details.querySelector(".body")) {
        details.append(el("div", { class: "body text" }, segment.text));
      }
    });
    return details;
  }

  function sawtooth(sample, reference) {
    const width = 360, height = 140, pad = 30;
    const curves = [[sample.curve, data.colors[seriesOf(sample.run, sample.mode)] || "#1f77b4", sample.mode]];
    if (reference && reference.curve) curves.push([reference.curve, "#999", reference.mode]);
    const xMax = Math.max(1, ...curves.map(([c]) => c[c.length - 1][0]));
    const yMax = Math.max(1, ...curves.flatMap(([c]) => c.map((p) => p[1])));
    const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "sawtooth" });
    const x = (v) => pad + (v / xMax) * (width - 2 * pad), y = (v) => height - pad - (v / yMax) * (height - 2 * pad);
    svg.append(svgEl("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#999" }));
    svg.append(svgEl("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, stroke: "#999" }));
    curves.forEach(([curve, color, name], index) => {
      svg.append(svgEl("polyline", { fill: "none", stroke: color, "stroke-width": 1.5,
        points: curve.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") }));
      const label = svgEl("text", { x: width - pad, y: 12 + 12 * index, "text-anchor": "end", fill: color });
      label.textContent = name;
      svg.append(label);
    });
    for (let i = 1; i + 1 < sample.curve.length; i += 2) { // corners come in (before, after) pairs
      const [position, top] = sample.curve[i];
      svg.append(svgEl("line", { x1: x(position), y1: y(top) - 3, x2: x(position), y2: y(top) - 9,
        stroke: "#d62728", class: "eviction" }));
    }
    const axis = svgEl("text", { x: width / 2, y: height - 6, "text-anchor": "middle" });
    axis.textContent = "generated position (tokens); KV tokens up to " + yMax + (data.approximate_curves ? " (approx.)" : "");
    svg.append(axis);
    return svg;
  }

  function sampleCard(problem, sample) {
    const card = el("div", { class: "sample", "data-run": sample.run, "data-mode": sample.mode,
      "data-sample": String(sample.sample), "data-verdict": sample.verdict, id: cardId(sample.run, sample.mode, sample.sample) });
    const facts = ["answer " + JSON.stringify(sample.answer), "status " + sample.status,
      sample.tokens + " tokens", "peak KV " + sample.peak, sample.blocks + " blocks", sample.mementos + " mementos",
      "finish " + sample.finish_reason, sample.well_formed ? "well formed" : "not well formed"];
    if (sample.endpoint) {
      facts.push("rounds " + sample.endpoint.rounds, "mementos sent " + sample.mementos,
        "peak context " + sample.peak, "calls " + sample.endpoint.calls, "fallbacks " + sample.endpoint.fallbacks);
    }
    card.append(el("h4", {}, "sample " + sample.sample + " ", el("span", { class: "verdict " + sample.verdict }, sample.verdict)),
      el("div", { class: "facts" }, facts.join(" · ")));
    if (sample.curve && sample.curve.length) {
      const base = data.references[sample.run];
      const reference = base && base !== sample.mode
        ? problem.samples.find((s) => s.run === sample.run && s.mode === base && s.sample === sample.sample) : null;
      card.append(el("div", { class: "kv" }, sawtooth(sample, reference)));
    }
    let blockIndex = 0;
    for (const segment of sample.segments) {
      card.append(segment.kind === "block" ? blockLine(segment, blockIndex++) : el("div", { class: "text" }, segment.text));
    }
    card.addEventListener("click", (event) => {
      if (event.target.closest("summary")) return;
      select(problem.id, sample.mode, sample.sample, false, sample.run);
    });
    return card;
  }

  function showProblem(problem) {
    pane.replaceChildren(el("h2", { "data-open-problem": problem.id }, problem.id + (problem.subject ? " · " + problem.subject : "")));
    if (problem.text) pane.append(el("div", { class: "text problem-text" }, problem.text));
    pane.append(el("p", {}, "gold answer: ", el("code", {}, problem.gold === null ? "?" : String(problem.gold))));
    for (const run of data.runs) {
      for (const mode of data.modes) {
        const samples = problem.samples.filter((s) => s.run === run && s.mode === mode);
        if (!samples.length) continue;
        const name = seriesOf(run, mode);
        pane.append(el("h3", { class: "mode-title", style: "color:" + (data.colors[name] || "#222") }, name));
        for (const sample of samples) pane.append(sampleCard(problem, sample));
      }
    }
    const missing = data.runs.filter((run) => !problem.samples.some((s) => s.run === run));
    if (missing.length) pane.append(el("p", { class: "note" }, "not in run " + missing.join(", ")));
  }

  // ---- selection, URL fragment, keys -----------------------------------------------------------
  function cardId(run, mode, sample) {
    return "s-" + (several ? run + "-" : "") + mode + "-" + sample;
  }

  function select(id, mode, sample, scroll, run) {
    run = run || data.runs[0];
    const problem = byId.get(id);
    if (!problem) return;
    if (current !== id) {
      showProblem(problem);
      current = id;
    }
    for (const row of rows) row.classList.toggle("selected", row.dataset.problemId === id);
    for (const card of pane.querySelectorAll(".sample")) {
      card.classList.toggle("selected",
        card.dataset.run === run && card.dataset.mode === mode && card.dataset.sample === String(sample));
    }
    const parts = ["problem=" + encodeURIComponent(id)];
    if (mode && several) parts.push("run=" + encodeURIComponent(run));
    if (mode) parts.push("mode=" + encodeURIComponent(mode), "sample=" + sample);
    history.replaceState(null, "", "#" + parts.join("&"));
    const row = rows.find((r) => r.dataset.problemId === id);
    if (scroll && row) row.scrollIntoView({ block: "nearest" });
    const card = mode ? document.getElementById(cardId(run, mode, sample)) : null;
    if (scroll && card) card.scrollIntoView({ block: "nearest" });
  }

  function fromFragment() {
    const fields = new URLSearchParams(location.hash.slice(1));
    if (fields.get("problem")) select(fields.get("problem"), fields.get("mode"), fields.get("sample"), true, fields.get("run"));
  }

  function step(delta) {
    const visible = Array.from(tbody.rows).filter((r) => !r.hidden);
    if (!visible.length) return;
    const index = visible.findIndex((r) => r.dataset.problemId === current);
    const next = visible[Math.min(visible.length - 1, Math.max(0, index < 0 ? 0 : index + delta))];
    select(next.dataset.problemId, null, null, true);
  }

  tbody.addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (!row) return;
    const mark = event.target.closest(".v");
    select(row.dataset.problemId, mark ? mark.dataset.mode : null, mark ? mark.dataset.sample : null, true,
      mark ? mark.dataset.run : null);
  });
  document.querySelectorAll("#problems th[data-sort]").forEach((th) => th.addEventListener("click", () => sortBy(th.cellIndex)));
  for (const id of ["search", "verdict", "verdict-mode", "compare", "changed", "subject"]) {
    if ($(id)) $(id).addEventListener("input", applyFilters);
  }
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "j") step(1);
    else if (event.key === "k") step(-1);
  });
  window.addEventListener("hashchange", fromFragment);
  applyFilters();
  fromFragment();
})();
