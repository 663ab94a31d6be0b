/* probes/report/viewer.js: the run viewer of report.html and compare.html (probes/report/viewer.h). It reads the
 * page's JSON block (id "run-data": the colour map and, per run, its train curve and probe rows) and
 * each run's attention records (id "attn-data-<i>": base64 of attention.bin's uint16 records), and builds
 * one panel per run: a slider over the probe steps, the attention map of the chosen layer and head at
 * that step, attention on P0 per layer, the rho profile through the blocks, the loss so far, and a
 * table of the step's numbers. Several runs get one more slider that moves them all. */
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const root = document.getElementById("viewer");

  /* a number as the report prints it: 3 significant digits, "n/a" for null */
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "n/a";
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
  }

  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    for (const k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  /* attention.bin's records (little-endian uint16, probability times 65535) */
  function decodeAttention(i) {
    const node = document.getElementById("attn-data-" + i);
    if (!node || !node.textContent.trim()) return null;
    const bytes = Uint8Array.from(atob(node.textContent.trim()), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer), q = new Uint16Array(bytes.length / 2);
    for (let k = 0; k < q.length; k++) q[k] = view.getUint16(2 * k, true);
    return q;
  }

  /* ---- drawing ---------------------------------------------------------------------------- */

  /* the figures' log colour scale: 1e-3 (or less) at the dark end, 1 at the bright end */
  function colour(p) {
    const t = Math.min(1, Math.max(0, (Math.log10(Math.max(p, 1e-3)) + 3) / 3));
    const i = 3 * Math.round(t * 255), cm = data.colormap;
    return [cm[i], cm[i + 1], cm[i + 2]];
  }

  /* the T x T map of record s, layer l, head h (-1: mean of the heads), query down, key across;
   * masked cells (key after query) light grey */
  function drawMap(canvas, a, q, s, l, h) {
    const T = a.T, ctx = canvas.getContext("2d"), img = ctx.createImageData(T, T);
    const heads = h < 0 ? [...Array(a.H).keys()] : [h];
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) {
        let sum = 0;
        for (const hh of heads) sum += q[(((s * a.L + l) * a.H + hh) * T + i) * T + j];
        const rgb = j > i ? [225, 225, 225] : colour(sum / heads.length / 65535);
        img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * (i * T + j));
      }
    ctx.putImageData(img, 0, 0);
  }

  function finiteRange(values) {
    const v = values.filter((x) => x !== null && isFinite(x));
    return v.length ? [Math.min(...v), Math.max(...v)] : [0, 1];
  }

  /* axes with a frame, min/max labels and a title; returns the data -> pixel maps */
  function axes(canvas, xr, yr, title) {
    const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
    const box = { l: 48, r: w - 10, t: 22, b: h - 24 };
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#888";
    ctx.strokeRect(box.l, box.t, box.r - box.l, box.b - box.t);
    ctx.fillStyle = "#222";
    ctx.font = "12px sans-serif";
    ctx.fillText(title, box.l, 14);
    ctx.fillText(fmt(yr[1]), 2, box.t + 10);
    ctx.fillText(fmt(yr[0]), 2, box.b);
    ctx.fillText(fmt(xr[0]), box.l, h - 8);
    ctx.textAlign = "right";
    ctx.fillText(fmt(xr[1]), box.r, h - 8);
    ctx.textAlign = "left";
    const span = (r) => (r[1] > r[0] ? r[1] - r[0] : 1);
    return {
      ctx,
      x: (v) => box.l + ((v - xr[0]) / span(xr)) * (box.r - box.l),
      y: (v) => box.b - ((v - yr[0]) / span(yr)) * (box.b - box.t),
      box,
    };
  }

  /* a polyline through the finite points (x[i], y[i]), with a dot at each when `dots` (so a series of
   * one point, such as the first validation loss, shows) */
  function line(ax, x, y, colour, width, dots) {
    const ctx = ax.ctx;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < x.length; i++) {
      if (y[i] === null || !isFinite(y[i])) continue;
      if (pen) ctx.lineTo(ax.x(x[i]), ax.y(y[i]));
      else ctx.moveTo(ax.x(x[i]), ax.y(y[i]));
      pen = true;
    }
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.fillStyle = colour;
    for (let i = 0; dots && i < x.length; i++) {
      if (y[i] === null || !isFinite(y[i])) continue;
      ctx.beginPath();
      ctx.arc(ax.x(x[i]), ax.y(y[i]), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  function dashedHLine(ax, y, colour) {
    const ctx = ax.ctx;
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = colour;
    ctx.beginPath();
    ctx.moveTo(ax.box.l, ax.y(y));
    ctx.lineTo(ax.box.r, ax.y(y));
    ctx.stroke();
    ctx.setLineDash([]);
  }

  /* ---- one run's panel -------------------------------------------------------------------- */

  function mount(run, index, parent) {
    const np = run.step ? run.step.length : 0;
    const sec = el("section", { class: "run" }, parent);
    el("h2", { text: run.name + (run.variant === "bos" ? " (probes with BOS in front, as trained)" : "") }, sec);
    if (np === 0) {
      el("p", { text: "probes.jsonl has no rows yet: nothing to scrub." }, sec);
      return null;
    }
    const bar = el("div", { class: "controls" }, sec);
    const slider = el("input", { type: "range", min: 0, max: np - 1, value: np - 1, id: "slider-" + index }, bar);
    const label = el("span", { class: "step-label", id: "step-" + index }, bar);
    const a = run.attn, q = a ? decodeAttention(index) : null;
    let layer = null, head = null;
    if (a) {
      el("label", { text: "layer" }, bar);
      layer = el("select", { id: "layer-" + index }, bar);
      for (let l = 0; l < a.L; l++) el("option", { value: l, text: String(l) }, layer);
      el("label", { text: "head" }, bar);
      head = el("select", { id: "head-" + index }, bar);
      el("option", { value: -1, text: "mean" }, head);
      for (let h = 0; h < a.H; h++) el("option", { value: h, text: String(h) }, head);
    }
    const grid = el("div", { class: "grid" }, sec);
    const figure = (caption, w, h, id) => {
      const f = el("figure", {}, grid);
      const c = el("canvas", { width: w, height: h, id: id + "-" + index }, f);
      el("figcaption", { text: caption }, f);
      return c;
    };
    const map = a ? figure("attention map (query down, key across; log colour 0.001-1)", a.T, a.T, "attn") : null;
    if (map) map.className = "map";
    const p0 = figure("attention on P0 per layer (grey: step 0; dashed: chance)", 360, 220, "p0");
    const rho = figure("rho: P0's norm over the median position's, through the blocks (grey: step 0)", 360, 220, "rho");
    const loss = figure("loss so far (blue: train, orange: validation)", 360, 220, "loss");
    const table = el("table", { class: "numbers", id: "numbers-" + index }, sec);

    function show(k) {
      const L = run.L, P = run.P, step = run.step[k], chance = run.chance[k];
      label.textContent = "step " + fmt(step) + " (" + (k + 1) + " of " + np + ")";
      const ap0 = run.a_p0_layer.slice(k * L, (k + 1) * L), first = run.a_p0_layer.slice(0, L);
      if (map) {
        const s = a.record[k];
        drawMap(map, a, q, s, Number(layer.value), Number(head.value));
        map.nextSibling.textContent = "attention map at step " + a.step[s] + ", layer " + layer.value +
          ", " + (head.value < 0 ? "mean of the heads" : "head " + head.value) + " (query down, key across; log colour 0.001-1)";
      }
      /* attention on P0: bars per layer */
      const top = Math.max(finiteRange(run.a_p0_layer)[1], chance) * 1.1;
      const ax = axes(p0, [0, L], [0, top], "attention on P0 by layer");
      ax.ctx.clearRect(0, p0.height - 20, p0.width, 20); /* layer names under the bars, not 0 and L */
      ax.ctx.textAlign = "center";
      for (let l = 0; l < L; l++) ax.ctx.fillText("layer " + l, ax.x(l + 0.5), p0.height - 8);
      ax.ctx.textAlign = "left";
      for (let l = 0; l < L; l++) {
        ax.ctx.fillStyle = "#3b6fb6";
        ax.ctx.fillRect(ax.x(l + 0.15), ax.y(ap0[l]), ax.x(l + 0.85) - ax.x(l + 0.15), ax.y(0) - ax.y(ap0[l]));
        ax.ctx.fillStyle = "#999";
        ax.ctx.fillRect(ax.x(l + 0.15), ax.y(first[l]) - 1, ax.x(l + 0.85) - ax.x(l + 0.15), 3);
      }
      dashedHLine(ax, chance, "#000");
      /* rho through the residual points 0, 0.5, 1, ... */
      const pts = [...Array(P).keys()].map((p) => p / 2);
      const rx = axes(rho, [0, (P - 1) / 2], [0, finiteRange(run.rho)[1] * 1.1], "rho at each residual point");
      dashedHLine(rx, 1, "#bbb");
      line(rx, pts, run.rho.slice(0, P), "#aaa", 1.5);
      line(rx, pts, run.rho.slice(k * P, (k + 1) * P), "#c0392b", 2.5, true);
      /* the loss up to this step */
      const upto = run.train_step.filter((s) => s <= step).length;
      const lr = finiteRange(run.train_ce.concat(run.train_val_loss));
      const lx = axes(loss, [0, Math.max(...run.train_step, 1)], lr, "loss (nats per token)");
      line(lx, run.train_step.slice(0, upto), run.train_ce.slice(0, upto), "#3b6fb6", 1.5);
      line(lx, run.train_step.slice(0, upto), run.train_val_loss.slice(0, upto), "#e67e22", 2.5, true);
      let val = null;
      for (let i = 0; i < upto; i++) if (run.train_val_loss[i] !== null) val = run.train_val_loss[i];
      /* the step's numbers */
      const rows = [["step", fmt(step)], ["validation loss (last at or before this step)", fmt(val)],
        ["mean attention on P0, layers >= 2", fmt(run.a_p0_2plus[k])], ["share of heads with a_p0 > 0.3", fmt(run.sink_rate_30[k])],
        ["rho after block 1 (point 2)", fmt(run.rho[k * P + Math.min(4, P - 1)])]];
      for (let l = 0; l < L; l++) rows.push(["attention on P0, layer " + l + " (x chance)", fmt(ap0[l]) + " (" + fmt(ap0[l] / chance) + "x)"]);
      table.textContent = "";
      for (const [name, value] of rows) {
        const tr = el("tr", {}, table);
        el("th", { text: name }, tr);
        el("td", { text: value }, tr);
      }
      slider.value = k;
    }
    slider.addEventListener("input", () => show(Number(slider.value)));
    if (layer) layer.addEventListener("change", () => show(Number(slider.value)));
    if (head) head.addEventListener("change", () => show(Number(slider.value)));
    show(np - 1);
    /* moves this panel to its probe step nearest `step` */
    return (step) => {
      let best = 0;
      for (let k = 1; k < np; k++) if (Math.abs(run.step[k] - step) < Math.abs(run.step[best] - step)) best = k;
      show(best);
    };
  }

  /* ---- the page --------------------------------------------------------------------------- */

  const runs = el("div", { class: data.runs.length > 1 ? "runs side" : "runs" }, null);
  const movers = data.runs.map((run, i) => mount(run, i, runs)).filter((m) => m);
  if (data.runs.length > 1) {
    const steps = [...new Set(data.runs.flatMap((r) => r.step || []))].sort((x, y) => x - y);
    if (steps.length) {
      const bar = el("div", { class: "controls all" }, root);
      el("label", { text: "all runs" }, bar);
      const all = el("input", { type: "range", min: 0, max: steps.length - 1, value: steps.length - 1, id: "slider-all" }, bar);
      const label = el("span", { class: "step-label", id: "step-all", text: "step " + steps[steps.length - 1] }, bar);
      all.addEventListener("input", () => {
        label.textContent = "step " + steps[Number(all.value)];
        for (const move of movers) move(steps[Number(all.value)]);
      });
    }
  }
  root.appendChild(runs);
  root.hidden = false;
})();
