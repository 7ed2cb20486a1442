// report.html's behaviour (inlined by report/page.py; no libraries, works offline):
// hover values on figures, sortable and filterable tables, model toggles, and the matrix picker.
(function () {
  "use strict";
  const data = (id) => JSON.parse(document.getElementById(id).textContent);
  const models = data("tpa-models");
  const colors = data("tpa-colors");
  const shown = new Set(models);
  const tip = document.getElementById("tip");
  const colorOf = (m) => colors[Math.max(0, models.indexOf(m)) % colors.length];

  function showTip(text, e) {
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = e.pageX + 14 + "px";
    tip.style.top = e.pageY + 14 + "px";
  }
  function hideTip() { tip.hidden = true; }

  // The nearest point (in pixels of the figure) within `reach` pixels, or null.
  function nearest(points, x, y, reach) {
    let best = null, bd = reach * reach;
    for (const p of points) {
      const dx = p[0] - x, dy = p[1] - y, d = dx * dx + dy * dy;
      if (d <= bd) { bd = d; best = p; }
    }
    return best;
  }

  // Figures: each PNG carries its points' pixel positions and values (report/hover.py).
  document.querySelectorAll("img.fig[data-hover]").forEach((img) => {
    const h = data(img.dataset.hover);
    img.addEventListener("mousemove", (e) => {
      const r = img.getBoundingClientRect();
      const sx = h.w / r.width, sy = h.h / r.height;
      const p = nearest(h.p, (e.clientX - r.left) * sx, (e.clientY - r.top) * sy, 18 * sx);
      if (p) showTip(p[2], e); else hideTip();
    });
    img.addEventListener("mouseleave", hideTip);
  });

  // Tables: click a header to sort (numbers as numbers, blanks last), type to filter, models toggled away hidden.
  const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
  function compare(a, b) {
    if (a === b) return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    if (NUMBER.test(a) && NUMBER.test(b)) return parseFloat(a) - parseFloat(b);
    return a.localeCompare(b, undefined, { numeric: true });
  }
  const tables = [];
  document.querySelectorAll("table.data").forEach((table) => {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const filter = document.createElement("input");
    filter.type = "search";
    filter.className = "filter";
    filter.placeholder = "filter rows…";
    const count = document.createElement("span");
    count.className = "count";
    const wrap = table.parentNode;
    wrap.parentNode.insertBefore(filter, wrap);
    wrap.parentNode.insertBefore(count, wrap);
    function apply() {
      const q = filter.value.trim().toLowerCase();
      let n = 0;
      for (const tr of rows) {
        const ok = (!tr.dataset.model || shown.has(tr.dataset.model)) &&
          (!q || tr.textContent.toLowerCase().includes(q));
        tr.hidden = !ok;
        if (ok) n++;
      }
      count.textContent = n + " of " + rows.length + " rows";
    }
    filter.addEventListener("input", apply);
    Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
      th.addEventListener("click", () => {
        const asc = th.dataset.sort !== "asc";
        Array.from(table.tHead.rows[0].cells).forEach((c) => delete c.dataset.sort);
        th.dataset.sort = asc ? "asc" : "desc";
        rows.sort((a, b) => compare(a.cells[i].textContent, b.cells[i].textContent) * (asc ? 1 : -1));
        rows.forEach((tr) => body.appendChild(tr));
      });
    });
    apply();
    tables.push(apply);
  });

  // A log-log chart in SVG: series [{name, color, x[], y[], dash, step}], hover shows the nearest point's values.
  const SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function chart(box, title, xlabel, ylabel, series) {
    box.textContent = "";
    const W = 520, H = 340, L = 64, R = 12, T = 26, B = 44;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, box);
    el("text", { x: W / 2, y: 16, "text-anchor": "middle" }, svg).textContent = title;
    const xs = [], ys = [];
    series.forEach((s) => s.x.forEach((x, i) => { if (x > 0 && s.y[i] > 0) { xs.push(x); ys.push(s.y[i]); } }));
    if (!xs.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = "no positive values to draw";
      return svg;
    }
    const lx0 = Math.log10(Math.min(...xs)), lx1 = Math.log10(Math.max(...xs)) + 1e-9;
    const ly0 = Math.log10(Math.min(...ys)), ly1 = Math.log10(Math.max(...ys)) + 1e-9;
    const px = (x) => L + ((Math.log10(x) - lx0) / (lx1 - lx0 || 1)) * (W - L - R);
    const py = (y) => H - B - ((Math.log10(y) - ly0) / (ly1 - ly0 || 1)) * (H - T - B);
    const tickText = (v) => (v >= 1e4 || v < 1e-3 ? v.toExponential(0) : String(+v.toPrecision(2)));
    // ticks at 1·10^d, and at 2 and 5·10^d where the axis spans under three decades
    const ticks = (lo, hi) => {
      const out = [];
      for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
        for (const m of hi - lo < 3 ? [1, 2, 5] : [1]) {
          const v = m * 10 ** d, l = Math.log10(v);
          if (l >= lo - 1e-9 && l <= hi + 1e-9) out.push(v);
        }
      }
      return out;
    };
    ticks(lx0, lx1).forEach((v) => {
      const x = px(v);
      el("line", { x1: x, x2: x, y1: T, y2: H - B, class: "grid" }, svg);
      el("text", { x: x, y: H - B + 14, "text-anchor": "middle" }, svg).textContent = tickText(v);
    });
    ticks(ly0, ly1).forEach((v) => {
      const y = py(v);
      el("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }, svg);
      el("text", { x: L - 4, y: y + 4, "text-anchor": "end" }, svg).textContent = tickText(v);
    });
    el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", class: "axis" }, svg);
    el("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, svg).textContent = xlabel;
    el("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(T + H - B) / 2})` },
      svg).textContent = ylabel;
    const points = [];
    series.forEach((s) => {
      const pts = [];
      s.x.forEach((x, i) => {
        if (x > 0 && s.y[i] > 0) {
          pts.push([px(x), py(s.y[i])]);
          points.push([px(x), py(s.y[i]), `${s.name} · ${xlabel} ${+x.toPrecision(4)} · ${ylabel} ${+s.y[i].toPrecision(4)}`]);
        }
      });
      if (!pts.length) return;
      const d = "M" + pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join("L");
      el("path", { d: d, fill: "none", stroke: s.color, "stroke-width": s.dash ? 2 : 1.6,
        "stroke-dasharray": s.dash ? "6 4" : "none", "data-series": s.name }, svg);
    });
    svg.addEventListener("mousemove", (e) => {
      const r = svg.getBoundingClientRect();
      const p = nearest(points, (e.clientX - r.left) * W / r.width, (e.clientY - r.top) * H / r.height, 14);
      if (p) showTip(p[2], e); else hideTip();
    });
    svg.addEventListener("mouseleave", hideTip);
    return svg;
  }

  // The matrix picker: any matrix's spectrum and ESD, every shown model that has it overlaid.
  const picker = data("tpa-picker");
  const select = document.getElementById("picker-matrix");
  const search = document.getElementById("picker-search");
  function fillOptions() {
    const q = search.value.trim().toLowerCase();
    const current = select.value;
    select.textContent = "";
    picker.keys.forEach((entry, i) => {
      if (!Object.keys(entry.m).some((m) => shown.has(m))) return;
      if (q && !entry.label.toLowerCase().includes(q)) return;
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = entry.label + " (" + Object.keys(entry.m).length + " model" +
        (Object.keys(entry.m).length === 1 ? "" : "s") + ")";
      select.appendChild(o);
    });
    if (Array.from(select.options).some((o) => o.value === current)) select.value = current;
    else if (!current) {  // first shown: a matrix that most models have (the first such in layer order)
      let best = null;
      Array.from(select.options).forEach((o) => {
        const n = Object.keys(picker.keys[Number(o.value)].m).length;
        if (!best || n > best[1]) best = [o.value, n];
      });
      if (best) select.value = best[0];
    }
  }
  function drawPicker() {
    const entry = picker.keys[Number(select.value)];
    const info = document.getElementById("picker-info");
    const spec = document.getElementById("picker-spectrum"), esd = document.getElementById("picker-esd");
    if (!entry) {
      info.textContent = "";
      spec.textContent = "no matrix of the shown models matches";
      esd.textContent = "";
      return;
    }
    const names = models.filter((m) => shown.has(m) && entry.m[m]);
    info.innerHTML = "<tr><th>model</th><th>shape</th><th>alpha</th><th>xmin</th><th>stable rank</th>" +
      "<th>90 % energy rank / full rank</th></tr>";
    names.forEach((m) => {
      const e = entry.m[m];
      const tr = info.insertRow();
      [m, e.shape, e.alpha, e.xmin, e.stable_rank, e.r90].forEach((v) => {
        tr.insertCell().textContent = v === null || v === undefined ? "" : String(v);
      });
    });
    chart(spec, "singular values — " + entry.key, "k", "σ_k",
      names.map((m) => ({ name: m, color: colorOf(m), x: entry.m[m].k, y: entry.m[m].s })));
    const esdSeries = [];
    names.forEach((m) => {
      const e = entry.m[m];
      const mid = e.density.map((_, i) => Math.sqrt(e.edges[i] * e.edges[i + 1]));
      esdSeries.push({ name: m + " ESD", color: colorOf(m), x: mid, y: e.density });
      if (e.alpha && e.xmin && e.tail && e.edges.length) {
        const top = e.edges[e.edges.length - 1], xs = [], ys = [];
        for (let i = 0; i <= 30; i++) {
          const x = e.xmin * (top / e.xmin) ** (i / 30);
          xs.push(x);
          ys.push(e.tail * (e.alpha - 1) / e.xmin * (x / e.xmin) ** -e.alpha);
        }
        esdSeries.push({ name: `${m} power law α = ${e.alpha}`, color: colorOf(m), x: xs, y: ys, dash: true });
      }
    });
    chart(esd, "empirical spectral density — " + entry.key, "λ = σ²", "density", esdSeries);
  }
  select.addEventListener("change", drawPicker);
  search.addEventListener("input", () => { fillOptions(); drawPicker(); });
  fillOptions();
  drawPicker();

  // Model toggles: a model switched off leaves every table and the picker.
  document.querySelectorAll("#model-toggles input").forEach((box) => {
    box.addEventListener("change", () => {
      if (box.checked) shown.add(box.value); else shown.delete(box.value);
      tables.forEach((apply) => apply());
      fillOptions();
      drawPicker();
    });
  });
})();
