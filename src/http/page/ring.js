// The ring: where each node goes, how it is drawn, what is under the pointer.
// DHT nodes sit on a circle at the angle of their 160-bit id (its first 32
// bits); workers sit on an outer circle next to the node they registered
// through. Sprites move toward their targets and fade in or out, so joins
// and departures animate rather than redraw.
"use strict";

const Ring = (() => {
  const COLORS = {
    coordinator: "#5aa9ff", gpu: "#c084fc", cpu: "#34d399", storage: "#fb923c",
    healthy: "#3ccf7a", warning: "#f2c94c", critical: "#ff5c5c", offline: "#6b7280",
  };
  const sprites = new Map(); // id -> sprite
  let links = [];
  let size = 600, dpr = 1;

  function kindOf(n) { return n.node_type === "worker" ? (n.worker_type || "cpu") : "coordinator"; }

  function idAngle(hex) {
    const v = parseInt(String(hex).slice(0, 8), 16);
    return Number.isFinite(v) ? (v / 4294967296) * Math.PI * 2 - Math.PI / 2 : 0;
  }

  function hashAngle(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    return (h / 4294967296) * Math.PI * 2 - Math.PI / 2;
  }

  // Target positions for every node of a topology answer.
  function layout(nodes) {
    const c = size / 2, r = size * 0.36, rw = size * 0.45;
    const angle = new Map();
    for (const n of nodes) if (n.node_type !== "worker") angle.set(n.id, idAngle(n.id));
    const perNode = new Map();
    const out = new Map();
    const workers = nodes.length - angle.size;
    const gap = Math.min(0.14, (Math.PI * 2) / Math.max(1, workers));
    for (const n of nodes) {
      if (n.node_type !== "worker") {
        const a = angle.get(n.id);
        out.set(n.id, { x: c + r * Math.cos(a), y: c + r * Math.sin(a), a });
        continue;
      }
      const home = angle.has(n.registered_via) ? angle.get(n.registered_via) : hashAngle(n.id);
      const k = perNode.get(home) || 0;
      perNode.set(home, k + 1);
      const a = home + (k % 2 ? 1 : -1) * Math.ceil(k / 2) * gap;
      const rr = rw + (k % 3) * size * 0.018;
      out.set(n.id, { x: c + rr * Math.cos(a), y: c + rr * Math.sin(a), a });
    }
    return out;
  }

  // Takes a new topology: new sprites fade in, missing ones fade out.
  function update(topo) {
    const targets = layout(topo.nodes);
    for (const n of topo.nodes) {
      const t = targets.get(n.id);
      let s = sprites.get(n.id);
      if (!s) {
        s = { x: t.x, y: t.y, alpha: 0, scale: 0.2, born: performance.now() };
        sprites.set(n.id, s);
      }
      Object.assign(s, { node: n, kind: kindOf(n), tx: t.x, ty: t.y, leaving: false });
    }
    const present = new Set(topo.nodes.map((n) => n.id));
    for (const [id, s] of sprites) if (!present.has(id)) s.leaving = true;
    links = topo.connections.map((l) => [l.source_id, l.target_id, l.type]);
  }

  function resize(canvas) {
    dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600;
    const old = size;
    size = w;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(w * dpr);
    if (old !== size) for (const s of sprites.values()) if (s.node) { s.x *= size / old; s.y *= size / old; }
  }

  // Moves every sprite one frame toward its target; true while anything moves.
  function step() {
    let moving = false;
    for (const [id, s] of sprites) {
      const ta = s.leaving ? 0 : 1;
      s.x += (s.tx - s.x) * 0.15; s.y += (s.ty - s.y) * 0.15;
      s.alpha += (ta - s.alpha) * 0.12; s.scale += (1 - s.scale) * 0.15;
      if (Math.abs(s.tx - s.x) + Math.abs(s.ty - s.y) > 0.3 || Math.abs(ta - s.alpha) > 0.02 || s.scale < 0.98) moving = true;
      if (s.leaving && s.alpha < 0.03) sprites.delete(id);
    }
    return moving;
  }

  function shape(ctx, kind, x, y, r) {
    ctx.beginPath();
    if (kind === "coordinator") ctx.arc(x, y, r, 0, Math.PI * 2);
    else if (kind === "gpu") { ctx.moveTo(x, y - r * 1.2); ctx.lineTo(x + r * 1.2, y); ctx.lineTo(x, y + r * 1.2); ctx.lineTo(x - r * 1.2, y); ctx.closePath(); }
    else if (kind === "storage") { ctx.moveTo(x, y - r * 1.2); ctx.lineTo(x + r * 1.1, y + r * 0.9); ctx.lineTo(x - r * 1.1, y + r * 0.9); ctx.closePath(); }
    else ctx.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
  }

  // view: {visible(id) -> bool, highlight: Set, recommended, selected, hovered}
  function draw(canvas, view) {
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, size, size);
    ctx.strokeStyle = "#1f2840"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(size / 2, size / 2, size * 0.36, 0, Math.PI * 2); ctx.stroke();
    const many = sprites.size > 300;
    const r = many ? 3.5 : sprites.size > 80 ? 5 : 8;
    for (const type of ["dht_connection", "worker_registration"]) {
      ctx.beginPath();
      for (const [a, b, t] of links) {
        if (t !== type) continue;
        const sa = sprites.get(a), sb = sprites.get(b);
        if (!sa || !sb || !view.visible(a) || !view.visible(b)) continue;
        ctx.moveTo(sa.x, sa.y); ctx.lineTo(sb.x, sb.y);
      }
      ctx.strokeStyle = type === "dht_connection" ? "rgba(90,169,255,0.16)" : "rgba(180,190,210,0.22)";
      ctx.stroke();
    }
    const searching = view.highlight.size > 0;
    for (const [id, s] of sprites) {
      const n = s.node;
      const dim = !view.visible(id) || (searching && !view.highlight.has(id));
      ctx.globalAlpha = s.alpha * (dim ? 0.25 : n.health === "offline" ? 0.45 : 1);
      const rr = r * s.scale * (view.highlight.has(id) ? 1.5 : 1);
      shape(ctx, s.kind, s.x, s.y, rr);
      ctx.fillStyle = COLORS[s.kind]; ctx.fill();
      ctx.lineWidth = many ? 1.5 : 2.5; ctx.strokeStyle = COLORS[n.health] || COLORS.offline; ctx.stroke();
      if (view.highlight.has(id)) { ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff"; shape(ctx, s.kind, s.x, s.y, rr + 4); ctx.stroke(); }
      if (id === view.recommended) { ctx.fillStyle = COLORS.warning; ctx.font = "bold 16px sans-serif"; ctx.fillText("★", s.x + rr + 2, s.y - rr); }
      if (id === view.selected || id === view.hovered) {
        ctx.lineWidth = 2; ctx.strokeStyle = "#ffffff"; ctx.beginPath(); ctx.arc(s.x, s.y, rr + 7, 0, Math.PI * 2); ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  }

  // The sprite nearest (x, y) in CSS pixels, within reach.
  function hit(x, y) {
    let best = null, bestD = 14 * 14;
    for (const [id, s] of sprites) {
      if (s.leaving) continue;
      const d = (s.x - x) ** 2 + (s.y - y) ** 2;
      if (d < bestD) { best = id; bestD = d; }
    }
    return best;
  }

  // Ids of nodes drawn now, in ring order (for keyboard moves and tests).
  function order() {
    return [...sprites.entries()].filter(([, s]) => !s.leaving)
      .sort((a, b) => Math.atan2(a[1].ty - size / 2, a[1].tx - size / 2) - Math.atan2(b[1].ty - size / 2, b[1].tx - size / 2))
      .map(([id]) => id);
  }

  return { update, resize, step, draw, hit, order, sprites, COLORS };
})();
