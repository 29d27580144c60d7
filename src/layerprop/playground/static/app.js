// layerprop playground front end: draws what the server computes. No math of the algorithm
// lives here (the layerprop library on the server computes every number); this file only
// sends settings, and maps the numbers it receives to pixels and text.
//
// The same code runs in two places. The standalone page (index.html loads this file as a classic
// script) talks to the server over a websocket and keeps the configuration in its URL: see
// pageTransport() at the end. The Jupyter widget (widget.py builds an ES module from this file and
// widget.js) mounts it in a shadow root and talks over anywidget's custom messages.
"use strict";

// Mount the playground on `root` (the page's document, or a widget's shadow root, holding the
// markup of index.html's body) and talk to a Session through `transport`:
//   transport.connect(h)    start; h.open() once messages can be sent, h.message(reply) for each
//                           reply, h.close(text) when the connection is gone, h.configure(cfg) to
//                           ask for a configuration (the page's URL changed)
//   transport.send(msg)     send one message; false when not connected
//   transport.start()       the messages to send on open (hello, then configure or state)
//   transport.saveConfig(c) optional: keep the configuration the Session accepted (the URL)
//   transport.link()        optional: a link that reproduces the configuration (Copy link)
//   transport.view          optional: this view's id; a reply tagged with another view's id (or
//                           null: pushed from Python) was not asked for here, so only the state
//                           it carries is shown (several views of one widget stay in step)
//   transport.disconnect()  optional: stop (the widget's view is removed)
// Returns { stats, destroy }.
function layerpropPlayground(root, transport) {
  const $ = (id) => root.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const CLASS_COLORS = ["#e0701c", "#1f6fb2", "#2e9d5b", "#9c4dcc", "#c9a100", "#d0435b", "#3aa9b5", "#6d6d6d"];
  const stats = { updates: 0, errors: 0, messages: 0, playing: false, lastWalkMs: null }; // for tests and benchmarks

  let opts = null;          // options from the server
  let cfg = null;           // the last configuration the server accepted
  let net = null;           // network view
  let data = null;          // data view
  let last = null;          // last update
  let playing = false;
  let inFlight = false;
  let walk = { row: null, step: 0, steps: 0, active: false, highlight: null, values: null };
  let nextId = 1;
  const pending = new Map();
  let drawQueued = false;
  let rateT0 = performance.now(), rateN = 0;

  // -- transport -----------------------------------------------------------------------------
  const MIRRORED = new Set(["state", "config", "network", "update"]); // shown even when another view asked
  function connect() {
    transport.connect({
      open: () => transport.start().forEach((m) => send(m)),
      message: (m) => { stats.messages++; onMessage(m); },
      close: (text) => { setPlaying(false); $("status").textContent = text; },
      configure: (c) => { setPlaying(false); send({ type: "configure", config: c }); },
    });
  }

  function send(msg, onReply) {
    msg.id = nextId++;
    if (transport.view !== undefined) msg.view = transport.view;
    if (!transport.send(msg)) return;
    if (onReply) pending.set(msg.id, onReply);
  }

  function onMessage(m) {
    const foreign = transport.view !== undefined && m.view !== undefined && m.view !== transport.view;
    if (foreign && !MIRRORED.has(m.type)) return; // another view's walk, file, error, ...
    const cb = !foreign && m.id !== undefined ? pending.get(m.id) : undefined;
    if (cb) pending.delete(m.id);
    switch (m.type) {
      case "options": opts = m; fillOptions(); break;
      case "state": clearAlert(); onState(m, foreign); break;
      case "config": clearAlert(); cfg = m.config; fillControls(); saveURL(); break;
      case "network": net = m; cfg = m.config; fillControls(); saveURL(); drawNetwork(); break;
      case "update": onUpdate(m, foreign); break;
      case "neuron": drawNeuron(m); break;
      case "walk": onWalk(m); break;
      case "file": download(m); break;
      case "error": onError(m); break;
    }
    if (cb) cb(m);
  }

  function onError(m) {
    stats.errors++;
    showAlert(m.message);
    if (m.request === "train") { inFlight = false; setPlaying(false); }
    if (cfg) fillControls(); // back to the settings the server accepted
  }
  function showAlert(text) { $("alert").textContent = "Error: " + text; }
  function clearAlert() { $("alert").textContent = ""; }

  // -- configuration <-> controls <-> URL ----------------------------------------------------
  const NUM = ["noise", "n_samples", "test_fraction", "data_seed", "density", "seed", "eta", "lam",
               "batch_size", "eval_every", "per_update"];
  const SEL = ["dataset", "head", "optimizer", "schedule"];

  function option(sel, value, text) {
    const o = document.createElement("option"); o.value = value; o.textContent = text || value; sel.appendChild(o); return o;
  }
  function fillOptions() {
    const ds = $("dataset"); ds.textContent = "";
    const g1 = document.createElement("optgroup"); g1.label = "TensorFlow Playground 2-D";
    opts.toy.forEach((n) => option(g1, n)); ds.appendChild(g1);
    const g2 = document.createElement("optgroup"); g2.label = "Bundled";
    opts.bundled.forEach((n) => option(g2, n)); ds.appendChild(g2);
    const g3 = document.createElement("optgroup"); g3.label = "Uploaded"; g3.id = "uploaded-group"; ds.appendChild(g3);
    [["head", opts.heads], ["optimizer", opts.optimizers], ["schedule", opts.schedules.filter((s) => s !== "cosine")]]
      .forEach(([id, list]) => { const s = $(id); s.textContent = ""; list.forEach((v) => option(s, v)); });
    const f = $("features"); f.querySelectorAll("label").forEach((l) => l.remove());
    opts.derived.forEach((name) => {
      const l = document.createElement("label"); const c = document.createElement("input");
      c.type = "checkbox"; c.value = name; c.dataset.feature = name; c.addEventListener("change", configure);
      l.appendChild(c); l.appendChild(document.createTextNode(name)); f.appendChild(l);
    });
    $("export_onnx").hidden = !opts.onnx;
  }

  function fillControls() {
    if (!cfg) return;
    NUM.forEach((k) => { if (root.activeElement !== $(k)) $(k).value = cfg[k]; });
    const ds = $("dataset");
    if (cfg.dataset.startsWith("upload:") && ![...ds.options].some((o) => o.value === cfg.dataset)) {
      option($("uploaded-group"), cfg.dataset, cfg.dataset.slice(7));
    }
    SEL.forEach((k) => { $(k).value = cfg[k]; });
    $("bias").checked = cfg.bias;
    if (root.activeElement !== $("hidden")) $("hidden").value = cfg.hidden.join(",");
    root.querySelectorAll("[data-feature]").forEach((c) => { c.checked = cfg.features.includes(c.value); });
    buildActs();
  }

  function buildActs() {
    const box = $("acts"); box.textContent = "";
    if (!opts) return;
    cfg.hidden.forEach((k, t) => {
      const d = document.createElement("div"); d.className = "field";
      const l = document.createElement("label"); l.textContent = `Layer ${t + 1} activation`;
      const s = document.createElement("select"); s.id = `act${t}`; s.dataset.layer = t; l.htmlFor = s.id;
      opts.activations.forEach((a) => option(s, a));
      s.value = cfg.activations[t] || "tanh"; s.addEventListener("change", configure);
      d.appendChild(l); d.appendChild(s); box.appendChild(d);
    });
  }

  function gather() {
    const c = {};
    NUM.forEach((k) => { c[k] = $(k).value === "" ? (cfg ? cfg[k] : undefined) : Number($(k).value); });
    SEL.forEach((k) => { c[k] = $(k).value; });
    c.bias = $("bias").checked;
    c.hidden = $("hidden").value;
    c.activations = [...root.querySelectorAll("#acts select")].map((s) => s.value);
    c.features = [...root.querySelectorAll("[data-feature]")].filter((x) => x.checked).map((x) => x.value);
    c.target = $("target").value || (cfg ? cfg.target : "");
    c.phantom = cfg ? cfg.phantom : [];
    Object.keys(c).forEach((k) => c[k] === undefined && delete c[k]);
    return c;
  }

  function configure(ev) {
    const c = gather();
    const src = ev && ev.target ? ev.target.id : "";
    // a new architecture or data set starts with the full edge set
    if (["hidden", "density", "dataset", "head", "bias"].includes(src) || (ev && ev.target && ev.target.dataset.feature)) c.phantom = [];
    if (src === "dataset") c.target = "";
    setPlaying(false);
    send({ type: "configure", config: c });
  }

  function saveURL() { if (cfg && transport.saveConfig) transport.saveConfig(cfg); }

  // -- state and updates --------------------------------------------------------------------
  function onState(m, foreign) {
    cfg = m.config; data = m.data; net = m.network;
    fillControls(); saveURL();
    const t = $("target"); t.textContent = "";
    data.columns.forEach((c) => option(t, c));
    t.value = data.target; t.disabled = !cfg.dataset.startsWith("upload:");
    $("features").disabled = !data.two_d;
    const cls = data.classes ? `${data.classes.length} classes` : "regression";
    $("data-summary").textContent = `${data.name}: ${data.n} rows (${data.n_train} training, ${data.n_test} test), ` +
      `${cls}; inputs standardized on the training rows.`;
    $("walk_row").max = data.n_train - 1;
    closeWalk();
    last = null;
    drawNetwork();
    onUpdate(m.update, foreign);
  }

  function onUpdate(u, foreign) {
    last = u; stats.updates++; rateN++;
    stats.iteration = u.iteration; stats.loss = u.metrics.loss;
    if (!foreign) { // an answer to this view's request: the next one may go
      inFlight = false;
      if (playing) requestTrain();
    }
    if (!drawQueued) { drawQueued = true; requestAnimationFrame(drawAll); }
  }

  function drawAll() {
    drawQueued = false;
    if (!last) return;
    const u = last, mt = u.metrics;
    let s = `iteration ${u.iteration} · loss ${fmt(mt.loss)}`;
    if (mt.test_loss !== null && mt.test_loss !== undefined) s += ` · test loss ${fmt(mt.test_loss)}`;
    if (mt.accuracy !== undefined) s += ` · accuracy ${(100 * mt.accuracy).toFixed(1)}%`;
    $("status").textContent = s;
    const now = performance.now();
    if (now - rateT0 > 1000) { $("rate").textContent = playing ? `${(rateN * 1000 / (now - rateT0)).toFixed(0)} updates/s` : ""; rateT0 = now; rateN = 0; }
    updateWeights(u.weights);
    drawHeatmap(u);
    drawLoss(u);
    drawMetrics(mt);
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(4);
  }

  // -- training controls ----------------------------------------------------------------------
  function requestTrain() {
    if (inFlight) return;
    inFlight = true;
    send({ type: "train" });
  }
  function setPlaying(p) {
    playing = p; stats.playing = p;
    $("play").disabled = p; $("pause").disabled = !p;
    if (p) { rateT0 = performance.now(); rateN = 0; requestTrain(); } else { $("rate").textContent = ""; }
  }

  // -- network diagram --------------------------------------------------------------------------
  let edgeEls = new Map(), neuronEls = new Map(), valueEls = [];
  function el(name, attrs, parent) {
    const e = document.createElementNS(SVGNS, name);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (parent) parent.appendChild(e);
    return e;
  }

  function layout() {
    const svg = $("netsvg"), W = svg.clientWidth || 600, H = svg.clientHeight || 360;
    const L = net.sizes.length, padX = 60, padY = 24;
    const xs = net.sizes.map((_, t) => padX + (L === 1 ? 0 : t * (W - 2 * padX) / (L - 1)));
    const ys = net.sizes.map((k, t) => {
      if (!net.drawn[t]) return null;
      const n = k + (net.bias && t < L - 1 ? 1 : 0);
      const step = Math.min(40, (H - 2 * padY) / Math.max(n, 1));
      const top = H / 2 - (step * (n - 1)) / 2;
      return Array.from({ length: n }, (_, i) => top + i * step);
    });
    return { W, H, xs, ys };
  }

  function drawNetwork() {
    if (!net) return;
    const svg = $("netsvg"); svg.textContent = "";
    edgeEls = new Map(); neuronEls = new Map(); valueEls = [];
    const { xs, ys, H } = layout();
    const gE = el("g", {}, svg), gN = el("g", {}, svg), gT = el("g", {}, svg);
    const T = net.sizes.length - 1;
    for (let t = 0; t < T; t++) {
      const m = net.masks[t];
      if (!m) { // summarized: one band between the layers
        el("line", { x1: xs[t], y1: H / 2, x2: xs[t + 1], y2: H / 2, stroke: "#9aa5b1", "stroke-width": 6, opacity: .4 }, gE);
        continue;
      }
      for (let i = 0; i < m.length; i++) {
        for (let j = 0; j < m[i].length; j++) {
          const attrs = { x1: xs[t], y1: ys[t][j], x2: xs[t + 1], y2: ys[t + 1][i] };
          const line = el("line", { ...attrs, class: "edge" + (m[i][j] ? "" : " phantom") }, gE);
          const hit = el("line", { ...attrs, class: "hit" }, gE);
          const title = el("title", {}, hit);
          title.textContent = `edge v_{${t},${j}} → v_{${t + 1},${i}}  (t, i, j) = (${t}, ${i}, ${j}); click: ${m[i][j] ? "make phantom" : "make real"}`;
          hit.addEventListener("click", () => send({ type: "toggle_edge", t, i, j }));
          edgeEls.set(`${t},${i},${j}`, line);
        }
        if (net.bias) {
          const line = el("line", { x1: xs[t], y1: ys[t][m[i].length], x2: xs[t + 1], y2: ys[t + 1][i], class: "edge" }, gE);
          edgeEls.set(`b${t},${i}`, line);
        }
      }
    }
    net.sizes.forEach((k, t) => {
      if (!net.drawn[t]) {
        const r = el("rect", { x: xs[t] - 22, y: H / 2 - 60, width: 44, height: 120, rx: 8, class: "summary" }, gN);
        const tx = el("text", { x: xs[t], y: H / 2 + 4, "text-anchor": "middle" }, gT); tx.textContent = `${k}`;
        el("title", {}, r).textContent = `layer ${t}: ${k} neurons (too many to draw one by one)`;
        return;
      }
      for (let i = 0; i < k; i++) {
        const c = el("circle", { cx: xs[t], cy: ys[t][i], r: 9, class: "neuron", tabindex: 0, role: "img",
          "aria-label": `neuron v ${t},${i}` }, gN);
        el("title", {}, c).textContent = `v_{${t},${i}}` + (t === 0 ? ` = ${net.features[i]}` : ` (${net.activations[t - 1]})`);
        const show = () => { if (data && data.two_d) send({ type: "neuron", t, i }); };
        c.addEventListener("mouseenter", show); c.addEventListener("focus", show);
        neuronEls.set(`${t},${i}`, c);
        if (t === 0) {
          const tx = el("text", { x: xs[t] - 14, y: ys[t][i] + 3, "text-anchor": "end" }, gT); tx.textContent = net.features[i];
        }
      }
      if (net.bias && t < net.sizes.length - 1) {
        const c = el("circle", { cx: xs[t], cy: ys[t][k], r: 7, class: "neuron bias" }, gN);
        el("title", {}, c).textContent = `constant neuron of layer ${t} (outputs 1): its edges are the biases b_${t}`;
        const tx = el("text", { x: xs[t] - 12, y: ys[t][k] + 3, "text-anchor": "end" }, gT); tx.textContent = "1";
      }
      const lab = el("text", { x: xs[t], y: 12, "text-anchor": "middle" }, gT);
      lab.textContent = t === 0 ? "input" : t === net.sizes.length - 1 ? `output (${net.activations[t - 1]})` : `${net.activations[t - 1]}`;
    });
    const f = net.facts;
    $("facts").textContent = `|V| = ${f.V}, |E| = ${f.E} (${f.E_without_bias} without bias edges), depth T = ${f.depth}. ` +
      `VC dimension: sign activation ${f.vc_sign.bound} ≈ ${Math.round(f.vc_sign.value)}; sigmoid between ` +
      `${f.vc_sigmoid.lower} = ${f.vc_sigmoid.lower_value} and ${f.vc_sigmoid.upper} = ${f.vc_sigmoid.upper_value}. ` +
      `${f.finite_precision.note}.` + (net.notices.length ? "  Note: " + net.notices.join("; ") : "");
    if (last) updateWeights(last.weights);
    applyHighlight();
  }

  function updateWeights(weights) {
    if (!net || !weights) return;
    let maxAbs = 1e-9;
    weights.forEach((w) => { if (w) { w.W.forEach((r) => r.forEach((v) => { maxAbs = Math.max(maxAbs, Math.abs(v)); })); } });
    weights.forEach((w, t) => {
      if (!w) return;
      w.W.forEach((row, i) => row.forEach((v, j) => {
        const e = edgeEls.get(`${t},${i},${j}`);
        if (!e || e.classList.contains("phantom")) return;
        e.setAttribute("stroke", v >= 0 ? "#1f6fb2" : "#e0701c");
        e.setAttribute("stroke-width", (0.4 + 4 * Math.abs(v) / maxAbs).toFixed(2));
        e.setAttribute("opacity", (0.35 + 0.65 * Math.abs(v) / maxAbs).toFixed(2));
      }));
      if (w.b) w.b.forEach((v, i) => {
        const e = edgeEls.get(`b${t},${i}`);
        if (!e) return;
        e.setAttribute("stroke", v >= 0 ? "#1f6fb2" : "#e0701c");
        e.setAttribute("stroke-width", (0.3 + 2 * Math.abs(v) / maxAbs).toFixed(2));
        e.setAttribute("opacity", "0.35");
        e.setAttribute("stroke-dasharray", "2 2");
      });
    });
  }

  // -- heatmaps --------------------------------------------------------------------------------
  function hexRGB(h) { const n = parseInt(h.slice(1), 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }
  const NEG = hexRGB("#e0701c"), POS = hexRGB("#1f6fb2"), WHITE = [255, 255, 255];
  function mix(a, b, s) { return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * s)); }
  function diverging(s) { s = Math.max(0, Math.min(1, s)); return s < 0.5 ? mix(NEG, WHITE, s * 2) : mix(WHITE, POS, (s - 0.5) * 2); }

  const offscreen = document.createElement("canvas");
  function paintGrid(canvas, values, n, colorOf) {
    offscreen.width = n; offscreen.height = n;
    const octx = offscreen.getContext("2d"), img = octx.createImageData(n, n);
    for (let p = 0; p < n * n; p++) {
      const c = colorOf(p);
      img.data[4 * p] = c[0]; img.data[4 * p + 1] = c[1]; img.data[4 * p + 2] = c[2]; img.data[4 * p + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true; ctx.imageSmoothingQuality = "high";
    ctx.drawImage(offscreen, 0, 0, canvas.width, canvas.height);
    return ctx;
  }

  function drawHeatmap(u) {
    const canvas = $("heatmap"), ctx = canvas.getContext("2d");
    if (!data || !data.two_d || !u.heatmap) {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      $("heat-note").textContent = data ? `The heatmap needs 2-D data (this data set has ${net ? net.sizes[0] : "?"} inputs).` : "";
      return;
    }
    const h = u.heatmap, n = data.grid, [lo, hi] = h.range;
    const colorOf = data.classes === null
      ? (p) => diverging(hi > lo ? (h.values[p] - lo) / (hi - lo) : 0.5)
      : h.classes
        ? (p) => mix(WHITE, hexRGB(CLASS_COLORS[h.classes[p] % CLASS_COLORS.length]), 0.25 + 0.6 * h.values[p])
        : (p) => diverging(h.values[p]);
    paintGrid(canvas, h.values, n, colorOf);
    const [x0, x1, y0, y1] = data.extent, W = canvas.width, H = canvas.height;
    const pts = data.points;
    const [plo, phi] = data.classes === null ? [Math.min(...pts.label), Math.max(...pts.label)] : [0, 1];
    for (let p = 0; p < pts.x.length; p++) {
      const px = (pts.x[p][0] - x0) / (x1 - x0) * W, py = (1 - (pts.x[p][1] - y0) / (y1 - y0)) * H;
      let col;
      if (data.classes === null) col = diverging((pts.label[p] - plo) / ((phi - plo) || 1));
      else if (data.classes.length === 2) col = pts.label[p] === 1 ? POS : NEG;
      else col = hexRGB(CLASS_COLORS[pts.label[p] % CLASS_COLORS.length]);
      ctx.beginPath(); ctx.arc(px, py, 3, 0, 2 * Math.PI);
      if (pts.test[p]) { ctx.strokeStyle = `rgb(${col})`; ctx.lineWidth = 1.5; ctx.stroke(); }
      else { ctx.fillStyle = `rgb(${col})`; ctx.fill(); ctx.strokeStyle = "#fff"; ctx.lineWidth = 0.8; ctx.stroke(); }
    }
    $("heat-note").textContent = data.classes === null
      ? `prediction from ${fmt(lo)} (orange) to ${fmt(hi)} (blue); filled dots: training, rings: test`
      : data.classes.length === 2 && !h.classes ? "network output o_T: 0 (orange) to 1 (blue); filled dots: training, rings: test"
        : "colour: predicted class, shade: confidence; filled dots: training, rings: test";
  }

  function drawNeuron(m) {
    const box = $("neuron-view"); box.hidden = false;
    const [lo, hi] = m.range;
    paintGrid($("neuron-canvas"), m.grid, data.grid, (p) => diverging(hi > lo ? (m.grid[p] - lo) / (hi - lo) : 0.5));
    $("neuron-caption").textContent = `o_{${m.t},${m.i}} over the input plane: ${fmt(lo)} (orange) to ${fmt(hi)} (blue)`;
  }

  // -- loss curves and metrics --------------------------------------------------------------
  function drawLoss(u) {
    const svg = $("losssvg"); svg.textContent = "";
    const W = svg.clientWidth || 320, H = svg.clientHeight || 150, pad = { l: 40, r: 8, t: 10, b: 18 };
    const hist = u.history.filter((p) => p[1] !== null);
    if (hist.length < 1) return;
    const i0 = hist[0][0], i1 = Math.max(hist[hist.length - 1][0], i0 + 1);
    let ymax = 0; hist.forEach((p) => { ymax = Math.max(ymax, p[1], p[2] || 0); });
    ymax = ymax || 1;
    const X = (i) => pad.l + (i - i0) / (i1 - i0) * (W - pad.l - pad.r), Y = (v) => pad.t + (1 - v / ymax) * (H - pad.t - pad.b);
    el("line", { x1: pad.l, y1: Y(0), x2: W - pad.r, y2: Y(0), stroke: "#c5ccd6" }, svg);
    el("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: Y(0), stroke: "#c5ccd6" }, svg);
    const t1 = el("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, svg); t1.textContent = fmt(ymax);
    const t0 = el("text", { x: pad.l - 4, y: Y(0), "text-anchor": "end" }, svg); t0.textContent = "0";
    const tx = el("text", { x: W - pad.r, y: H - 4, "text-anchor": "end" }, svg); tx.textContent = `iteration ${i1}`;
    const ts = el("text", { x: pad.l, y: H - 4 }, svg); ts.textContent = `${i0}`;
    el("polyline", { class: "train", points: hist.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ") }, svg);
    const test = hist.filter((p) => p[2] !== null);
    if (test.length) el("polyline", { class: "test", points: test.map((p) => `${X(p[0]).toFixed(1)},${Y(p[2]).toFixed(1)}`).join(" ") }, svg);
    if (u.best && u.best.iteration >= i0) {
      const c = el("circle", { class: "best", cx: X(u.best.iteration), cy: Y(u.best.loss), r: 4 }, svg);
      el("title", {}, c).textContent = `best on ${test.length ? "test" : "training"} data: iteration ${u.best.iteration}, loss ${fmt(u.best.loss)}`;
    }
    const lg = el("text", { x: W - pad.r, y: pad.t + 8, "text-anchor": "end" }, svg);
    lg.textContent = test.length ? "— training   - - test   ● best" : "— training   ● best";
  }

  function drawMetrics(mt) {
    const box = $("metrics"); box.textContent = "";
    if (mt.accuracy === undefined) return;
    const p = document.createElement("div");
    p.textContent = `accuracy: ${(100 * mt.accuracy).toFixed(1)}% on ${mt.confusion_on} data, ${(100 * mt.train_accuracy).toFixed(1)}% on training data`;
    box.appendChild(p);
    const cap = document.createElement("div");
    cap.className = "muted"; cap.textContent = `confusion matrix (${mt.confusion_on} data): rows true class, columns predicted`;
    box.appendChild(cap);
    const tbl = document.createElement("table");
    const hr = tbl.insertRow(); hr.appendChild(document.createElement("th"));
    data.classes.forEach((c) => { const th = document.createElement("th"); th.textContent = c; hr.appendChild(th); });
    mt.confusion.forEach((row, i) => {
      const r = tbl.insertRow(); const th = document.createElement("th"); th.textContent = data.classes[i]; r.appendChild(th);
      row.forEach((v, j) => { const td = r.insertCell(); td.textContent = v; if (i === j) td.className = "diag"; });
    });
    box.appendChild(tbl);
  }

  // -- the example walk ------------------------------------------------------------------------
  function requestWalk(step) {
    const t0 = performance.now();
    send({ type: "walk", row: Number($("walk_row").value || 0), step }, (m) => { if (m.type === "walk") stats.lastWalkMs = performance.now() - t0; });
  }
  function onWalk(m) {
    walk = { row: m.row, step: m.step, steps: m.steps, active: true, highlight: m.highlight, values: m.values };
    $("walk_title").textContent = `Step ${m.step + 1} of ${m.steps}: ${m.title}`;
    $("walk_formula").textContent = m.formula;
    $("walk_lines").textContent = m.lines.join("\n");
    $("walk_pos").textContent = `row ${m.row}`;
    $("walk_prev").disabled = m.step === 0;
    $("walk_next").disabled = m.step >= m.steps - 1;
    $("walk_close").disabled = false;
    stats.walkStep = m.step; stats.walkTitle = m.title;
    applyHighlight();
  }
  function closeWalk() {
    walk = { row: null, step: 0, steps: 0, active: false, highlight: null, values: null };
    $("walk_prev").disabled = $("walk_next").disabled = $("walk_close").disabled = true;
    $("walk_title").textContent = "Pick a training row and press “Step through example”.";
    $("walk_formula").textContent = ""; $("walk_lines").textContent = ""; $("walk_pos").textContent = "";
    applyHighlight();
  }
  function applyHighlight() {
    edgeEls.forEach((e) => e.classList.remove("hl"));
    neuronEls.forEach((n) => n.classList.remove("hl"));
    valueEls.forEach((v) => v.remove()); valueEls = [];
    if (!walk.active || !walk.highlight || !net) return;
    walk.highlight.edges.forEach(([t, i, j]) => { const e = edgeEls.get(`${t},${i},${j}`); if (e) e.classList.add("hl"); });
    walk.highlight.neurons.forEach(([t, i]) => { const n = neuronEls.get(`${t},${i}`); if (n) n.classList.add("hl"); });
    const svg = $("netsvg");
    Object.entries(walk.values || {}).forEach(([t, vals]) => {
      vals.forEach((v, i) => {
        const n = neuronEls.get(`${t},${i}`); if (!n) return;
        const tx = el("text", { x: Number(n.getAttribute("cx")) + 12, y: Number(n.getAttribute("cy")) - 8, class: "val" }, svg);
        tx.textContent = fmt(v); valueEls.push(tx);
      });
    });
  }

  // -- files -------------------------------------------------------------------------------------
  function toBase64(buf) {
    const bytes = new Uint8Array(buf); let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  function download(m) {
    const bin = atob(m.data), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const url = URL.createObjectURL(new Blob([bytes], { type: m.mime }));
    const a = document.createElement("a"); a.href = url; a.download = m.name; document.body.appendChild(a); a.click();
    setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }
  function readFile(file, cb) {
    const limit = opts ? opts.limits.upload_bytes : 5e6;
    if (cb.kind === "upload" && file.size > limit) { showAlert(`${file.name} is larger than the upload limit of ${limit / 1e6} MB`); return; }
    const r = new FileReader();
    r.onload = () => cb(toBase64(r.result));
    r.onerror = () => showAlert(`could not read ${file.name}`);
    r.readAsArrayBuffer(file);
  }
  function uploadCSV(file) {
    setPlaying(false);
    const cb = (b64) => send({ type: "upload", name: file.name, data: b64 });
    cb.kind = "upload";
    readFile(file, cb);
  }

  // -- wiring ------------------------------------------------------------------------------------
  function wire() {
    $("play").addEventListener("click", () => setPlaying(true));
    $("pause").addEventListener("click", () => setPlaying(false));
    $("step").addEventListener("click", () => { setPlaying(false); send({ type: "train", iterations: 1 }); });
    $("reset").addEventListener("click", () => { setPlaying(false); send({ type: "reset" }); });
    NUM.concat(SEL, ["bias", "hidden"]).forEach((id) => $(id).addEventListener("change", configure));
    $("target").addEventListener("change", configure);
    $("sparsify").addEventListener("click", () => { setPlaying(false); send({ type: "sparsity", density: Number($("density").value) < 1 ? Number($("density").value) : 0.5, seed: Number($("seed").value) }); });
    $("edge_toggle").addEventListener("click", () => {
      const parts = $("edge").value.split(/[ ,;.]+/).filter((s) => s !== "").map(Number);
      if (parts.length !== 3 || parts.some((x) => !Number.isInteger(x))) { showAlert("Edge: type three integers t,i,j (the edge from v_{t,j} to v_{t+1,i})"); return; }
      send({ type: "toggle_edge", t: parts[0], i: parts[1], j: parts[2] });
    });
    $("edge").addEventListener("keydown", (e) => { if (e.key === "Enter") $("edge_toggle").click(); });
    $("upload").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) uploadCSV(f); e.target.value = ""; });
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); const f = e.dataTransfer.files[0]; if (f) uploadCSV(f); });
    $("export").addEventListener("click", () => send({ type: "export", format: "safetensors" }));
    $("export_onnx").addEventListener("click", () => send({ type: "export", format: "onnx" }));
    $("import").addEventListener("change", (e) => {
      const f = e.target.files[0]; e.target.value = "";
      if (f) { setPlaying(false); readFile(f, (b64) => send({ type: "import_model", name: f.name, data: b64 })); }
    });
    if (transport.link) {
      $("copylink").addEventListener("click", () => {
        const href = transport.link();
        const done = () => { $("link-note").textContent = "link copied"; setTimeout(() => { $("link-note").textContent = ""; }, 2000); };
        if (navigator.clipboard) navigator.clipboard.writeText(href).then(done, () => { $("link-note").textContent = href; });
        else $("link-note").textContent = href;
      });
    } else {
      $("copylink").hidden = true; // no URL to keep the configuration in
    }
    $("walk_start").addEventListener("click", () => { setPlaying(false); requestWalk(0); });
    $("walk_next").addEventListener("click", () => requestWalk(walk.step + 1));
    $("walk_prev").addEventListener("click", () => requestWalk(walk.step - 1));
    $("walk_close").addEventListener("click", closeWalk);
    window.addEventListener("resize", onResize);
  }
  function onResize() { drawNetwork(); if (last) drawLoss(last); }

  function destroy() {
    setPlaying(false);
    window.removeEventListener("resize", onResize);
    if (transport.disconnect) transport.disconnect();
  }

  wire();
  connect();
  return { stats, destroy };
}

// The standalone page: a websocket to the server that served it; the configuration in the URL.
function pageTransport() {
  let ws = null;
  function encodeConfig(c) {
    const p = new URLSearchParams();
    Object.entries(c).forEach(([k, v]) => {
      if (k === "phantom") v = v.map((e) => e.join(".")).join(";");
      else if (Array.isArray(v)) v = v.join(",");
      p.set(k, String(v));
    });
    return p.toString();
  }
  function configFromURL() {
    const h = location.hash.replace(/^#/, "");
    if (!h) return {};
    const c = {};
    new URLSearchParams(h).forEach((v, k) => { c[k] = v; });
    if (c.bias !== undefined) c.bias = c.bias === "true";
    if (c.dataset && c.dataset.startsWith("upload:")) delete c.dataset; // the file is not in the link
    return c;
  }
  return {
    connect(h) {
      ws = new WebSocket(`ws://${location.host}/ws`);
      ws.onopen = h.open;
      ws.onmessage = (ev) => h.message(JSON.parse(ev.data));
      ws.onclose = () => h.close("disconnected: restart `layerprop playground` and reload");
      window.addEventListener("hashchange", () => h.configure(configFromURL()));
    },
    send(msg) {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(msg));
      return true;
    },
    start() { return [{ type: "hello" }, { type: "configure", config: configFromURL() }]; },
    saveConfig(c) { history.replaceState(null, "", "#" + encodeConfig(c)); },
    link() { return location.href; },
  };
}

// A classic <script> (index.html) starts the page; in an ES module (the widget) currentScript is
// null and the widget's render() mounts the playground instead.
if (typeof document !== "undefined" && document.currentScript && document.getElementById("status")) {
  window.layerprop = layerpropPlayground(document, pageTransport()).stats; // for tests and benchmarks
}
