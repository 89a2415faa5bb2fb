// The station console's script: live updates over one event stream,
// charts (uPlot), confirmation dialogs and the actions. No inline script
// anywhere (the Content-Security-Policy forbids it); every POST carries the
// session's CSRF token.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const page = document.body.dataset.page;
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const fmt = (x) => (typeof x === "number" && isFinite(x)) ? x.toPrecision(4).replace(/\.?0+$/, "") : "–";
  const pct = (x) => (typeof x === "number" && isFinite(x)) ? (100 * x).toFixed(x < 0.01 ? 2 : 1) + " %" : "–";

  function toast(msg, err) {
    const t = $("#toast");
    t.textContent = msg;
    document.body.dataset.said = msg; // the last message, kept (the toast goes)
    t.className = "show" + (err ? " err" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ""; }, err ? 8000 : 4000);
  }

  // ask shows the confirmation dialog; it resolves true on Confirm only.
  // It opens after the click that asked has been handled: opened during
  // that click, the browser may take the same click as one outside the
  // dialog and close it at once (light dismiss). closedby="closerequest"
  // keeps clicks outside from closing it; Esc still cancels.
  async function ask(text) {
    const d = $("#confirm");
    await new Promise((r) => setTimeout(r, 0));
    $("#confirm-text").textContent = text;
    d.returnValue = "";
    const answer = new Promise((resolve) => {
      d.addEventListener("close", () => { document.body.dataset.answer = d.returnValue; resolve(d.returnValue === "ok"); }, { once: true });
    });
    d.showModal();
    return answer;
  }

  async function post(url, body) {
    document.body.dataset.posting = url;
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const text = await r.text();
    document.body.dataset.posting = "";
    let data = null;
    try { data = JSON.parse(text); } catch (e) { data = { error: text.trim() }; }
    if (!r.ok) throw new Error((data && data.error) || r.statusText);
    return data;
  }

  const logout = $("#logout");
  if (logout) logout.addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
    location.href = "/login";
  });

  // One event stream per page: "result" after each part, "state" every 2 s.
  function stream(onResult, onState, onFrame) {
    const es = new EventSource("/events");
    es.addEventListener("result", (ev) => onResult && onResult(JSON.parse(ev.data), ev.data));
    es.addEventListener("frame", (ev) => onFrame && onFrame(ev.data));
    es.addEventListener("state", (ev) => onState && onState(JSON.parse(ev.data)));
    es.addEventListener("open", () => { const s = $("#stream"); if (s) s.textContent = "live"; });
    es.addEventListener("error", () => { const s = $("#stream"); if (s) s.textContent = "reconnecting…"; });
    return es;
  }

  // ---- Live ----
  function live() {
    const img = $("#frame");
    img.addEventListener("load", () => { $("#noframe").style.display = "none"; img.dataset.seq = img.dataset.want; });
    stream((r) => {
      const fail = r.verdict === "FAIL";
      const v = $("#verdict");
      v.textContent = fail ? "FAIL" : "PASS";
      v.className = "verdict " + (fail ? "fail" : "pass");
      $("#score").textContent = fmt(r.score);
      $("#threshold").textContent = fmt(r.threshold);
      $("#seq").textContent = r.seq;
      $("#time").textContent = new Date(r.time).toLocaleTimeString();
      $("#bank").textContent = r.bank_version;
      // The product recipe whose bank scored the part (stations with recipes).
      $("#recipe").textContent = r.recipe ? r.recipe + (r.recipe_number ? " (#" + r.recipe_number + ")" : "") : "–";
      $("#regions").textContent = (r.regions || []).length;
      $("#latency").textContent = fmt(r.latency_ms.total) + " ms";
      // The bar: the threshold at 2/3 of its width.
      const full = r.threshold * 1.5;
      $("#bar-fill").style.width = Math.min(100, 100 * r.score / full) + "%";
      $("#bar-fill").style.background = fail ? "var(--fail)" : "var(--pass)";
      $("#bar-th").style.left = (100 / 1.5) + "%";
      // For the console's own test: which part is shown, and when it came.
      document.body.dataset.seq = r.seq;
      document.body.dataset.shownAt = Date.now();
    }, (s) => {
      $("#state").textContent = s.state + (s.camera_connected ? "" : " · camera down") + (s.broker_connected ? "" : " · broker down");
      if (s.model) $("#model").textContent = s.model;
      if (s.recipe) $("#recipe").textContent = s.recipe + (s.recipe_number ? " (#" + s.recipe_number + ")" : "");
      if (s.bank_version) $("#bank").textContent = s.bank_version;
    }, (seq) => {
      img.dataset.want = seq;
      img.src = "/live/frame.png?seq=" + seq;
    });
  }

  // ---- Trends ----
  function thresholdLine(getX) {
    return { hooks: { draw: [(u) => {
      const x = getX();
      if (!(x > 0)) return;
      const ctx = u.ctx, px = u.valToPos(x, "x", true);
      ctx.save(); ctx.strokeStyle = "#ff5252"; ctx.lineWidth = 2 * devicePixelRatio; ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
    }] } };
  }
  const axis = { stroke: "#9aa0a6", grid: { stroke: "#2c333a" }, ticks: { stroke: "#2c333a" } };

  function trends() {
    let trend = null, hist = null, th = 0, last = 0;
    async function refresh() {
      last = Date.now();
      const t = await (await fetch("/api/trends")).json();
      th = t.threshold_in_force;
      const w = (id) => $(id).clientWidth;
      const tdata = [(t.time_ms || []).map((x) => x / 1000), t.score || [], t.threshold || []];
      if (!trend) {
        trend = new uPlot({ width: w("#trend"), height: 240, scales: { x: { time: true } }, axes: [axis, axis],
          series: [{}, { label: "score", stroke: "#4f9cf9", width: 0, points: { show: true, size: 4, fill: "#4f9cf9" } },
            { label: "threshold", stroke: "#ff5252", dash: [6, 4], width: 2, points: { show: false } }] }, tdata, $("#trend"));
      } else trend.setData(tdata);
      const edges = t.edges || [], counts = t.counts || [];
      const centers = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
      const hdata = [centers, counts];
      if (!hist) {
        hist = new uPlot({ width: w("#hist"), height: 220, scales: { x: { time: false } }, axes: [axis, axis], plugins: [thresholdLine(() => th)],
          series: [{ label: "score" }, { label: "good parts", stroke: "#1b873f", fill: "rgba(27,135,63,.6)", paths: uPlot.paths.bars({ size: [0.9, 100] }), points: { show: false } }] },
          hdata, $("#hist"));
      } else hist.setData(hdata);
      $("#h-th").textContent = fmt(th);
      $("#h-frr").textContent = t.expected_frr == null ? "unknown" : pct(t.expected_frr);
      $("#h-obs").textContent = pct(t.observed_fail_rate);
      $("#h-n").textContent = (t.seq || []).length;
      for (const [id, rows] of [["#shifts", t.shifts || []], ["#hours", (t.hours || []).slice(-24)]]) {
        const body = $(id + " tbody");
        body.replaceChildren(...rows.slice().reverse().map((r) => {
          const tr = document.createElement("tr");
          for (const v of [r.label, r.pass, r.fail, pct(r.fail / Math.max(1, r.pass + r.fail))]) {
            const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          }
          return tr;
        }));
      }
    }
    refresh();
    stream(() => { if (Date.now() - last > 5000) refresh(); });
  }

  // ---- Threshold ----
  function threshold() {
    const box = $(".threshold"), range = $("#th-range"), num = $("#th-value"), n = $("#th-n");
    let timer = null, seq = 0;
    async function preview() {
      const t = parseFloat(num.value), mine = ++seq;
      if (!(t > 0)) return;
      const r = await fetch("/api/preview?t=" + encodeURIComponent(t) + "&n=" + encodeURIComponent(n.value));
      if (!r.ok || mine !== seq) return;
      const p = await r.json();
      $("#pv-tofail").textContent = p.to_fail; $("#pv-topass").textContent = p.to_pass; $("#pv-n").textContent = p.n;
      $("#pv-failed").textContent = p.failed; $("#pv-wouldfail").textContent = p.would_fail;
      box.dataset.previewT = p.threshold; box.dataset.previewN = p.n;
    }
    const later = () => { clearTimeout(timer); timer = setTimeout(preview, 120); };
    range.addEventListener("input", () => { num.value = range.value; later(); });
    num.addEventListener("input", () => { range.value = num.value; later(); });
    n.addEventListener("input", later);
    preview();
    const apply = $("#th-apply");
    if (apply) apply.addEventListener("click", async () => {
      const t = parseFloat(num.value);
      await preview();
      if (!await ask(`Set the threshold to ${fmt(t)}? Of the last ${$("#pv-n").textContent} parts, ${$("#pv-tofail").textContent} that passed would fail and ${$("#pv-topass").textContent} that failed would pass. This changes pass/fail now and is recorded in the audit log.`)) return;
      try { const r = await post("/api/threshold", { set: t }); toast("Threshold now " + fmt(r.threshold)); $("#th-now").textContent = fmt(r.threshold); }
      catch (e) { toast(e.message, true); }
    });
    const reset = $("#th-reset");
    if (reset) reset.addEventListener("click", async () => {
      if (!await ask("Go back to the bank's own threshold (" + fmt(parseFloat(box.dataset.bankTh)) + ")?")) return;
      try { const r = await post("/api/threshold", { reset: true }); toast("Threshold now the bank's: " + fmt(r.threshold)); $("#th-now").textContent = fmt(r.threshold); }
      catch (e) { toast(e.message, true); }
    });
  }

  // ---- Banks ----
  // refreshMain replaces the page's content with a fresh copy from the
  // server (no reload: the event stream and the page stay).
  async function refreshMain(bind) {
    const r = await fetch(location.pathname, { credentials: "same-origin" });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.querySelector("main");
    if (fresh) { document.querySelector("main").replaceWith(document.adoptNode(fresh)); bind(); }
  }

  function bindBanks() {
    for (const b of document.querySelectorAll("button.activate")) {
      b.addEventListener("click", async () => {
        const v = parseInt(b.dataset.version, 10);
        if (!await ask(`Activate bank version ${v}? The station inspects with it from the next part on; pass/fail may change. This is recorded in the audit log.`)) return;
        try { const r = await post("/api/bank/activate", { version: v, confirmed: true }); toast("Bank version " + r.version + " in use"); refreshMain(bindBanks); }
        catch (e) { toast(e.message, true); }
      });
    }
    const rb = $("#rollback");
    if (rb) rb.addEventListener("click", async () => {
      if (!await ask(`Roll back to bank version ${rb.dataset.version}? This is recorded in the audit log.`)) return;
      try { const r = await post("/api/bank/rollback", { confirmed: true }); toast("Rolled back: version " + r.version + " in use"); refreshMain(bindBanks); }
      catch (e) { toast(e.message, true); }
    });
    const form = $("#enroll");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { count: parseInt(f.get("count"), 10), interval_ms: parseInt(f.get("interval_ms"), 10) || 0, activate: f.get("activate") === "on", note: f.get("note") || "" };
      if (!await ask(`Teach the station: take the next ${body.count} parts as GOOD parts and build a new bank${body.activate ? " and put it in use" : ""}? Only good parts may pass the camera meanwhile.`)) return;
      try { await post("/api/bank/enroll", body); toast("Teach mode started"); } catch (e) { toast(e.message, true); }
    });
  }

  function banks() {
    bindBanks();
    let was = "";
    stream(null, (s) => {
      const e = s.enroll;
      if (!e) return;
      const txt = `${e.state}: ${e.captured} of ${e.count} parts` + (e.stage ? ` · ${e.stage} ${e.done}/${e.total}` : "") + (e.version ? ` → version ${e.version}` : "") + (e.error ? ` (${e.error})` : "");
      $("#enroll-state").textContent = txt;
      const p = $("#enroll-progress");
      p.value = e.state === "capturing" ? e.captured / Math.max(1, e.count) : (e.total ? e.done / e.total : (e.state === "done" ? 1 : p.value));
      if (was && was !== e.state && (e.state === "done" || e.state === "failed")) refreshMain(bindBanks);
      was = e.state;
    });
  }

  // ---- One failure ----
  function failure() {
    const b = $("#mark-good");
    if (b) b.addEventListener("click", async () => {
      const seq = parseInt(b.dataset.seq, 10);
      if (!await ask(`Part ${seq} is a GOOD part? It is added to the bank (a new version, recalibrated, put in use).`)) return;
      b.disabled = true; b.textContent = "Adding…";
      try {
        const r = await post("/api/bank/append", { seqs: [seq] });
        $("#append-result").textContent = `Bank version ${r.version} made from ${r.from_version}: ${r.patches_added} patches added, threshold ${fmt(r.old_threshold)} → ${fmt(r.threshold)}.`;
        b.textContent = "Added";
      } catch (e) { toast(e.message, true); b.disabled = false; b.textContent = "Mark as a good part"; }
    });
  }

  const pages = { live, trends, threshold, banks, failure, health: () => setInterval(() => refreshMain(() => {}), 5000) };
  if (pages[page]) pages[page]();
})();
