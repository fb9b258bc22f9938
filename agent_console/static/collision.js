/* Collision control in the console: while a work item is open, heartbeat every 10 s to
   /api/collision/interaction:<id>/heartbeat (app/collision_views.py) with "viewing", or "replying" while
   the agent is writing to the customer, and show who else is on the same item. Leaving (the tab
   closes, the page unloads) tells the server at once; a lost browser simply stops heart-beating. */
(function () {
  "use strict";
  const HEARTBEAT_MS = 10000;
  const REPLYING_FOR_MS = 15000; // typing marks the agent "replying" for this long
  const watched = new Map(); // interaction id -> {node, timer, typedAt}

  function url(id, what) { return "/api/collision/interaction:" + id + "/" + what; }

  function send(id, what, body, csrf) {
    return fetch(url(id, what), {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}), keepalive: what === "leave",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  }

  function show(entry, others, S, fmt) {
    const node = entry.node;
    node.textContent = "";
    node.dataset.count = String(others.length);
    if (!others.length) return;
    const names = others.map((p) => fmt(p.mode === "replying" ? S.collision_replying : S.collision_viewing, { name: p.name }));
    node.textContent = fmt(S.collision_others, { who: names.join(", ") });
    node.classList.toggle("replying", others.some((p) => p.mode === "replying"));
  }

  function beat(id, ctx) {
    const entry = watched.get(id);
    if (!entry) return;
    const mode = Date.now() - entry.typedAt < REPLYING_FOR_MS ? "replying" : "viewing";
    send(id, "heartbeat", { mode: mode }, ctx.csrf).then((data) => {
      if (data && watched.get(id) === entry) show(entry, data.others || [], ctx.S, ctx.fmt);
    });
  }

  /* Start watching work item ``id``; ``node`` is the (aria-live) element that lists the others. */
  function watch(id, node, ctx) {
    if (watched.has(id)) return;
    const entry = { node: node, typedAt: 0, timer: null };
    watched.set(id, entry);
    beat(id, ctx);
    entry.timer = setInterval(() => beat(id, ctx), HEARTBEAT_MS);
  }

  /* The agent is writing to the customer on ``id``: announce "replying" now if it was "viewing". */
  function typing(id, ctx) {
    const entry = watched.get(id);
    if (!entry) return;
    const wasReplying = Date.now() - entry.typedAt < REPLYING_FOR_MS;
    entry.typedAt = Date.now();
    if (!wasReplying) beat(id, ctx);
  }

  function unwatch(id, ctx) {
    const entry = watched.get(id);
    if (!entry) return;
    clearInterval(entry.timer);
    watched.delete(id);
    send(id, "leave", {}, ctx.csrf);
  }

  window.addEventListener("pagehide", () => {
    watched.forEach((entry, id) => navigator.sendBeacon && navigator.sendBeacon(url(id, "leave")));
  });

  window.DeskCollision = { watch: watch, typing: typing, unwatch: unwatch, HEARTBEAT_MS: HEARTBEAT_MS };
})();
