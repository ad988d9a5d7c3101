// The page's data and controls. It reads only this node's own JSON: the
// topology pushed by server-sent events (EventSource on
// /api/dht/topology/stream), polled every 5 s from /api/dht/topology when
// the stream fails, and /api/services/discover/{service} for a searched
// service's recommended worker. window.kadmesh exposes what is drawn, for
// tests and for the curious.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("ring"), tip = $("tip"), details = $("details"), list = $("node-list");
  const state = { topo: null, byId: new Map(), selected: null, hovered: null, service: "", providers: new Set(),
    recommended: null, type: "", health: "", feed: "connecting", updates: 0 };

  const kindOf = (n) => (n.node_type === "worker" ? n.worker_type || "cpu" : "coordinator");
  const short = (id) => (id.length > 16 ? id.slice(0, 12) + "…" : id);
  const visible = (id) => {
    const n = state.byId.get(id);
    if (!n) return true;
    return (!state.type || kindOf(n) === state.type) && (!state.health || n.health === state.health);
  };

  function age(t) {
    if (t == null) return "never";
    if (t < 1e9) return `monotonic ${t.toFixed(0)} s`;
    const s = Math.max(0, Date.now() / 1000 - t);
    return s < 90 ? `${s.toFixed(0)} s ago` : `${(s / 60).toFixed(1)} min ago`;
  }

  function label(n) {
    const what = n.node_type === "worker" ? `${kindOf(n).toUpperCase()} worker ${n.id}` : `DHT node ${short(n.id)}`;
    const svc = n.services && n.services.length ? `, services ${n.services.join(", ")}` : "";
    const rec = n.id === state.recommended ? ", recommended" : "";
    const prov = state.providers.has(n.id) ? `, provides ${state.service}` : "";
    return `${what}, ${n.health}${svc}${prov}${rec}`;
  }

  function showDetails(id) {
    const n = state.byId.get(id);
    if (!n) return;
    const rows = [
      ["id", n.id], ["type", n.node_type === "worker" ? `${kindOf(n)} worker` : `DHT node (${n.peer})`],
      ["health", `${n.health} (${n.status})`], ["address", n.address || (n.host ? `${n.host}:${n.dht_port}` : "–")],
      ["tunnel URL", n.tunnel_url || "–"], ["services", (n.services || []).join(", ") || "–"],
      ["capabilities", JSON.stringify(n.capabilities || {})], ["load", n.load == null ? "–" : n.load.toFixed(2)],
      ["last seen", age(n.last_seen)], ["software", n.software || (n.version ? String(n.version) : "–")],
    ];
    if (n.rtt_ms != null) rows.push(["RTT", `${n.rtt_ms.toFixed(2)} ms`]);
    if (n.id === state.recommended) rows.push(["recommended", `for ${state.service}`]);
    details.innerHTML = "<h2>Details</h2><dl></dl>";
    const dl = details.querySelector("dl");
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k; dd.textContent = v; dl.append(dt, dd);
    }
    details.dataset.node = n.id;
  }

  function select(id, focusList) {
    state.selected = id;
    if (id) showDetails(id);
    if (focusList) { const b = list.querySelector(`[data-id="${CSS.escape(id)}"]`); if (b) b.focus(); }
    wake();
  }

  function renderList() {
    const frag = document.createDocumentFragment();
    for (const id of Ring.order()) {
      const n = state.byId.get(id);
      if (!n || !visible(id)) continue;
      const li = document.createElement("li"), b = document.createElement("button");
      b.type = "button"; b.dataset.id = id; b.textContent = label(n);
      b.addEventListener("focus", () => select(id, false));
      b.addEventListener("click", () => select(id, false));
      li.append(b); frag.append(li);
    }
    list.replaceChildren(frag);
  }

  function counters(t) {
    const s = t.stats || {};
    $("c-nodes").textContent = s.coordinator_count ?? "–";
    $("c-workers").textContent = s.worker_count ?? "–";
    $("c-services").textContent = s.service_count ?? (t.services || []).length;
    $("c-records").textContent = s.records_held ?? "–";
    $("c-lookups").textContent = s.lookups_per_s == null ? "–" : s.lookups_per_s.toFixed(1);
    $("c-edge").textContent = s.edge_router_requests ?? "–";
    const dl = $("services");
    dl.replaceChildren(...(t.services || []).map((name) => Object.assign(document.createElement("option"), { value: name })));
  }

  function apply(t) {
    state.topo = t; state.updates++;
    state.byId = new Map(t.nodes.map((n) => [n.id, n]));
    Ring.update(t);
    counters(t);
    if (state.service) highlight(state.service, false);
    renderList();
    if (state.selected && state.byId.has(state.selected)) showDetails(state.selected);
    wake();
  }

  // Providers of `service` among the drawn workers, and its recommended worker.
  async function highlight(service, ask) {
    state.service = service;
    state.providers = new Set();
    if (!service) { state.recommended = null; $("search-result").textContent = ""; renderList(); wake(); return; }
    for (const n of state.byId.values()) if ((n.services || []).includes(service) && n.node_type === "worker") state.providers.add(n.id);
    if (ask) {
      try {
        const r = await fetch(`/api/services/discover/${encodeURIComponent(service)}`, { headers: { "Cache-Control": "no-cache" } });
        const body = await r.json();
        state.recommended = r.ok ? body.recommended : null;
      } catch (e) { state.recommended = null; }
    }
    const rec = state.recommended ? `; recommended: ${state.recommended}` : "";
    $("search-result").textContent = `${state.providers.size} provider(s) of ${service}${rec}`;
    renderList(); wake();
  }

  // Live feed: server-sent events, polling when they fail.
  let pollTimer = null;
  function setFeed(f) { state.feed = f; $("feed").textContent = f === "live" ? "live (pushed every 5 s)" : f === "polling" ? "polling every 5 s" : f; }
  async function poll() {
    try { const r = await fetch("/api/dht/topology"); if (r.ok) apply(await r.json()); setFeed("polling"); }
    catch (e) { setFeed("unreachable; retrying"); }
  }
  function startPolling() { if (!pollTimer) { poll(); pollTimer = setInterval(poll, 5000); } }
  function connect() {
    // `?poll` forces the fallback (for tests and for proxies that buffer streams).
    if (!window.EventSource || new URLSearchParams(location.search).has("poll")) return startPolling();
    const es = new EventSource("/api/dht/topology/stream");
    es.addEventListener("topology", (e) => { setFeed("live"); apply(JSON.parse(e.data)); });
    es.onerror = () => { es.close(); startPolling(); };
  }

  // Drawing: frames only while something moves, plus one per update.
  let frame = 0;
  function wake() { if (!frame) frame = requestAnimationFrame(tick); }
  function tick() {
    frame = 0;
    const moving = Ring.step();
    Ring.draw(canvas, { visible, highlight: state.providers, recommended: state.recommended, selected: state.selected, hovered: state.hovered });
    if (moving) wake();
  }

  function pointer(e) {
    const r = canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }
  canvas.addEventListener("mousemove", (e) => {
    const [x, y] = pointer(e);
    const id = Ring.hit(x, y);
    if (id !== state.hovered) { state.hovered = id; wake(); }
    const n = id && state.byId.get(id);
    tip.hidden = !n;
    if (n) { tip.textContent = label(n); tip.style.left = `${x + 14}px`; tip.style.top = `${y + 14}px`; showDetails(id); }
  });
  canvas.addEventListener("mouseleave", () => { state.hovered = null; tip.hidden = true; if (state.selected) showDetails(state.selected); wake(); });
  canvas.addEventListener("click", (e) => { const id = Ring.hit(...pointer(e)); if (id) select(id, false); });
  canvas.addEventListener("keydown", (e) => {
    const ids = Ring.order().filter(visible);
    if (!ids.length) return;
    const at = ids.indexOf(state.selected);
    if (e.key === "ArrowRight" || e.key === "ArrowDown") { state.selected = ids[(at + 1) % ids.length]; }
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") { state.selected = ids[(at - 1 + ids.length) % ids.length]; }
    else if (e.key === "Enter" || e.key === " ") { if (state.selected) showDetails(state.selected); else return; }
    else if (e.key === "Escape") { state.selected = null; }
    else return;
    e.preventDefault();
    const n = state.selected && state.byId.get(state.selected);
    canvas.setAttribute("aria-label", n ? `Selected: ${label(n)}. Enter shows its details.` : "The DHT ring");
    wake();
  });

  $("search").addEventListener("input", (e) => highlight(e.target.value.trim(), true));
  $("f-type").addEventListener("change", (e) => { state.type = e.target.value; renderList(); wake(); });
  $("f-health").addEventListener("change", (e) => { state.health = e.target.value; renderList(); wake(); });

  function download(name, blob) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name; a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
  const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");
  $("export-png").addEventListener("click", () => canvas.toBlob((b) => b && download(`kadmesh-${stamp()}.png`, b)));
  $("export-json").addEventListener("click", () => {
    if (state.topo) download(`kadmesh-${stamp()}.json`, new Blob([JSON.stringify(state.topo, null, 2)], { type: "application/json" }));
  });

  window.addEventListener("resize", () => { Ring.resize(canvas); if (state.topo) Ring.update(state.topo); wake(); });
  Ring.resize(canvas);
  connect();

  window.kadmesh = {
    state,
    apply,
    drawn: () => Ring.order(),
    highlighted: () => [...state.providers],
    details: () => details.dataset.node || null,
  };
})();
