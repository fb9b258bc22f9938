/* The agent console: one Socket.IO connection to /agent; the page is rebuilt from the server's
   snapshot on every (re)connect, then kept current by offer / offer_gone / presence / work / work_closed
   events. Every command is acknowledged by the server ({ok, error}); nothing here decides business rules. */
(function () {
  "use strict";
  const PAGE = JSON.parse(document.getElementById("console-page").textContent);
  const S = PAGE.strings;
  const LANG = PAGE.lang;
  const { el, fmt, render, when } = window.DeskScreenPop;
  const HEARTBEAT_MS = 10000;
  // pops: the screen-pop each offer brought, by interaction: the work item of an accepted offer comes
  // without one (the server does not build the same 360 twice), and its panel shows this one.
  const state = { offers: new Map(), work: new Map(), active: null, timers: new Map(), pops: new Map() };

  const $ = (id) => document.getElementById(id);
  const socket = io(PAGE.namespace, { transports: ["websocket", "polling"], reconnectionDelayMax: 5000 });
  const PHONE = PAGE.softphone && window.DeskSoftphone ? window.DeskSoftphone : null;
  if (PHONE) PHONE.start(PAGE.softphone, S); // its failure is shown in its own status, nothing else stops

  function notice(text, isError) {
    const n = $("notice");
    n.textContent = text || "";
    n.classList.toggle("error", !!isError);
  }

  function errorText(ack) {
    const key = "error_" + ((ack && ack.error) || "unknown");
    return S[key] || fmt(S.error, { code: (ack && ack.error) || "?" });
  }

  function command(name, payload) {
    return new Promise((resolve) => {
      socket.timeout(10000).emit(name, payload || {}, (err, ack) => {
        if (err) ack = { ok: false, error: "timeout" };
        if (!ack.ok) notice(errorText(ack), true);
        resolve(ack);
      });
    });
  }

  // ---------------------------------------------------------------- connection and presence
  function setConnection(ok) {
    $("connection").textContent = ok ? S.connected : S.reconnecting;
    $("connection").dataset.ok = ok ? "1" : "0";
  }

  function showPresence(p) {
    const node = $("presence-now");
    node.dataset.presence = p.presence;
    node.textContent = (S[p.presence] || p.presence) + (p.reason ? " · " + reasonLabel(p.reason) : "");
  }

  function reasonLabel(code) {
    const found = PAGE.break_reasons.find((r) => r.code === code);
    return found ? found.label : code;
  }

  function showStats(stats, load, capacity) {
    const dl = $("stats");
    dl.textContent = "";
    const add = (k, v) => { dl.appendChild(el("dt", { text: k })); dl.appendChild(el("dd", { text: v })); };
    add(S.stats_handled, String(stats.handled));
    add(S.stats_aht, stats.average_handle_s === null ? "–" : fmt(S.seconds, { s: stats.average_handle_s }));
    add(S.stats_talk, fmt(S.seconds, { s: stats.talk_s }));
    add(S.stats_rejected, String(stats.rejected));
    if (load !== undefined) $("load").textContent = fmt(S.load, { load: load, capacity: capacity });
  }

  socket.on("connect", () => { setConnection(true); notice(""); });
  socket.on("disconnect", () => setConnection(false));
  socket.on("connect_error", () => setConnection(false));
  setInterval(() => { if (socket.connected) socket.emit("heartbeat", {}, () => {}); }, HEARTBEAT_MS);

  socket.on("snapshot", (snap) => {
    if (!snap) return;
    showPresence(snap.presence);
    showStats(snap.stats, snap.load, snap.capacity);
    [...state.offers.keys()].forEach((id) => removeOffer(id));
    snap.offers.forEach(addOffer);
    const ids = new Set(snap.work.map((w) => w.interaction_id));
    [...state.work.keys()].forEach((id) => { if (!ids.has(id)) removeWork(id); else window.DeskChannels.refresh(id); });
    snap.work.forEach(upsertWork);
    refreshEmpty();
    (snap.alerts || []).slice().reverse().forEach((a) => addAlert(a, false));
  });
  socket.on("presence", showPresence);
  socket.on("alert", (a) => addAlert(a, true));
  ["chat.message", "chat.typing", "chat.read", "chat.ended"].forEach((name) => {
    socket.on(name, (p) => window.DeskChannels.onChatEvent(name, p));
  });
  socket.on("email.message", (p) => window.DeskChannels.onEmailEvent("email.message", p));
  socket.on("offer", addOffer);
  socket.on("offer_gone", (g) => {
    removeOffer(g.offer_id);
    if (g.reason !== "accepted" && !state.work.has(g.interaction_id)) state.pops.delete(g.interaction_id);
    if (g.reason !== "accepted" && g.reason !== "rejected") notice(S["offer_gone_" + g.reason] || g.reason, g.reason === "rescinded");
  });
  socket.on("work", (w) => { upsertWork(w); refreshEmpty(); });
  socket.on("work_closed", (w) => { removeWork(w.interaction_id); refreshEmpty(); command("sync").then(applySync); });

  function applySync(ack) {
    if (ack.ok && ack.snapshot) showStats(ack.snapshot.stats, ack.snapshot.load, ack.snapshot.capacity);
  }

  $("go-available").addEventListener("click", () => command("presence", { presence: "available" }));
  $("go-break").addEventListener("click", () => command("presence", { presence: "break", reason: $("break-reason").value }));
  $("go-offline").addEventListener("click", () => command("presence", { presence: "offline" }));

  // ---------------------------------------------------------------- complaint SLA alerts
  // Newest first; a fresh alert is announced (role=alert), the ones a reconnect restores are not.
  // Dismissed alerts stay dismissed in this browser (sessionStorage), across reconnects.
  const DISMISSED_KEY = "desk.console.dismissed-alerts";
  const dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]"));

  function alertKey(a) { return a.notice_id !== null ? "n" + a.notice_id : [a.complaint_id, a.clock, a.point, a.due].join("|"); }

  function alertText(a) {
    const clock = S["clock_" + a.clock] || a.clock;
    const what = a.point === "breach" ? fmt(S.alert_breach, { clock: clock }) : fmt(S.alert_point, { point: a.point, clock: clock });
    return fmt(S.alert_text, { reference: a.reference, level: a.level || "", what: what, due: when(a.due, LANG) });
  }

  function addAlert(a, fresh) {
    const key = alertKey(a);
    if (dismissed.has(key) || document.querySelector('#alert-list li[data-key="' + CSS.escape(key) + '"]')) return;
    const item = el("li", { class: "alert-item" + (a.point === "breach" ? " breach" : ""), "data-key": key, "data-complaint": a.complaint_id });
    if (fresh) item.setAttribute("role", "alert");
    item.appendChild(el("span", { class: "alert-text", text: alertText(a) }));
    if (a.url) item.appendChild(el("a", { href: a.url, target: "_blank", rel: "noopener", class: "open-complaint", text: S.open_complaint }));
    const close = el("button", { type: "button", class: "secondary dismiss", text: S.dismiss, "aria-label": fmt(S.dismiss_alert, { reference: a.reference }) });
    close.addEventListener("click", () => {
      dismissed.add(key);
      sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...dismissed]));
      item.remove();
      $("alerts").hidden = !$("alert-list").children.length;
      $("go-available").focus();
    });
    item.appendChild(close);
    $("alert-list").prepend(item);
    $("alerts").hidden = false;
  }

  // ---------------------------------------------------------------- offers
  function addOffer(offer) {
    if (state.offers.has(offer.offer_id)) return;
    state.pops.set(offer.interaction_id, offer.screenpop);
    const card = document.getElementById("offer-template").content.firstElementChild.cloneNode(true);
    card.id = "offer-" + offer.offer_id;
    card.dataset.interaction = offer.interaction_id;
    const who = offer.screenpop.customer ? offer.screenpop.customer.customer.name : S.unknown_caller;
    card.querySelector(".offer-title").textContent = S.new_offer + ": " + (S["channel_" + offer.channel] || offer.channel) + " · " + who;
    const accept = card.querySelector(".accept");
    const reject = card.querySelector(".reject");
    accept.textContent = S.accept;
    reject.textContent = S.reject;
    accept.addEventListener("click", () => {
      accept.disabled = reject.disabled = true;
      if (PHONE && offer.channel === "voice") PHONE.expect(offer.interaction_id); // its call rings here next
      command("accept", { offer_id: offer.offer_id }).then((a) => {
        if (!a.ok) { removeOffer(offer.offer_id); if (PHONE) PHONE.forget(offer.interaction_id); }
      });
    });
    reject.addEventListener("click", () => { accept.disabled = reject.disabled = true; command("reject", { offer_id: offer.offer_id }).then(() => removeOffer(offer.offer_id)); });
    render(card.querySelector(".screenpop"), offer.screenpop, S, LANG, { linkSearch: null });
    $("offers").appendChild(card);
    const countdown = card.querySelector(".countdown");
    const expires = Date.parse(offer.expires_at);
    const tick = () => {
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      countdown.textContent = fmt(S.expires_in, { s: left });
      if (left <= 0) removeOffer(offer.offer_id);
    };
    tick();
    state.offers.set(offer.offer_id, { card: card, timer: setInterval(tick, 500) });
    accept.focus();
  }

  function removeOffer(offerId) {
    const entry = state.offers.get(offerId);
    if (!entry) return;
    clearInterval(entry.timer);
    entry.card.remove();
    state.offers.delete(offerId);
  }

  // ---------------------------------------------------------------- workspace
  function refreshEmpty() { $("no-work").textContent = state.work.size ? "" : S.no_work; }

  function selectTab(id) {
    state.active = id;
    state.work.forEach((entry, key) => {
      const on = key === id;
      entry.tab.setAttribute("aria-selected", on ? "true" : "false");
      entry.tab.tabIndex = on ? 0 : -1;
      entry.panel.hidden = !on;
    });
  }

  function upsertWork(w) {
    let entry = state.work.get(w.interaction_id);
    if (!entry) {
      const tab = el("button", { type: "button", role: "tab", id: "tab-" + w.interaction_id, "aria-controls": "panel-" + w.interaction_id, class: "tab" });
      tab.addEventListener("click", () => selectTab(w.interaction_id));
      tab.addEventListener("keydown", (e) => {
        const keys = [...state.work.keys()];
        const at = keys.indexOf(w.interaction_id);
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          const next = keys[(at + (e.key === "ArrowRight" ? 1 : keys.length - 1)) % keys.length];
          selectTab(next); state.work.get(next).tab.focus();
        }
      });
      const panel = el("div", { role: "tabpanel", id: "panel-" + w.interaction_id, "aria-labelledby": "tab-" + w.interaction_id, class: "panel" });
      $("tabs").appendChild(tab);
      $("panels").appendChild(panel);
      entry = { tab: tab, panel: panel, data: null };
      state.work.set(w.interaction_id, entry);
      buildPanel(entry, w);
      selectTab(w.interaction_id);
    }
    entry.data = w;
    entry.tab.textContent = (S["channel_" + w.channel] || w.channel) + " · " + (w.customer_name || S.unknown_caller);
    updatePanel(entry, w);
  }

  function removeWork(id) {
    const entry = state.work.get(id);
    if (!entry) return;
    entry.tab.remove();
    entry.panel.remove();
    clearInterval(state.timers.get(id));
    state.timers.delete(id);
    state.work.delete(id);
    state.pops.delete(id);
    window.DeskCollision.unwatch(id, COLLISION);
    window.DeskChannels.detach(id);
    if (PHONE) PHONE.forget(id);
    if (state.active === id) { const first = state.work.keys().next(); if (!first.done) selectTab(first.value); }
  }

  function field(labelText, input) {
    const id = input.id;
    return el("div", { class: "field" }, [el("label", { for: id, text: labelText }), input]);
  }

  const COLLISION = { csrf: PAGE.csrf, S: S, fmt: fmt };
  const CHANNELS = { command: command, S: S, fmt: fmt, el: el, when: when, LANG: LANG, notice: notice,
                     templates: PAGE.reply_templates || [],
                     typing: (id) => window.DeskCollision.typing(id, COLLISION) };

  function buildPanel(entry, w) {
    const id = w.interaction_id;
    const p = entry.panel;
    const others = el("p", { class: "collision", id: "collision-" + id, role: "status", "aria-live": "polite" });
    p.appendChild(others);
    window.DeskCollision.watch(id, others, COLLISION);
    const pop = el("div", { class: "screenpop" });
    p.appendChild(pop);
    entry.pop = pop;
    const controls = el("div", { class: "controls" });
    if (w.channel === "voice") callControls(id).forEach((b) => controls.appendChild(b));
    const end = el("button", { type: "button", class: "end", text: S.end_contact });
    end.addEventListener("click", () => command("end", { interaction_id: id }));
    controls.appendChild(end);
    if (PAGE.complaint_url) {
      const q = new URLSearchParams({ interaction_id: id });
      if (w.customer_id) q.set("customer_id", w.customer_id);
      controls.appendChild(el("a", { class: "button-link raise-complaint", href: PAGE.complaint_url + "?" + q.toString(), target: "_blank", rel: "noopener", text: S.raise_complaint }));
    }
    p.appendChild(controls);
    const channelBox = el("div", { class: "channel" });
    p.appendChild(channelBox);
    window.DeskChannels.attach(id, w.channel, channelBox, CHANNELS);

    const notes = el("textarea", { id: "notes-" + id, rows: "3", maxlength: "4000" });
    const saveNotes = el("button", { type: "button", class: "secondary save-notes", text: S.save_notes });
    saveNotes.addEventListener("click", () => command("note", { interaction_id: id, text: notes.value }).then((a) => a.ok && notice(S.saved)));
    p.appendChild(field(S.notes, notes));
    p.appendChild(saveNotes);
    entry.notes = notes;

    const wrap = el("form", { class: "wrap-up", "aria-label": S.wrap_up });
    const dispo = el("select", { id: "disposition-" + id, required: "required" });
    dispo.appendChild(el("option", { value: "", text: S.choose }));
    PAGE.dispositions.forEach((d) => dispo.appendChild(el("option", { value: d.code, text: d.label })));
    const timer = el("p", { class: "wrap-timer", role: "timer", "aria-live": "off" });
    wrap.appendChild(field(S.disposition, dispo));
    wrap.appendChild(timer);
    wrap.appendChild(el("button", { type: "submit", class: "complete", text: S.complete_wrap_up }));
    wrap.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!dispo.value) { notice(S.error_unknown_disposition, true); dispo.focus(); return; }
      command("wrap_up", { interaction_id: id, disposition: dispo.value, notes: notes.value });
    });
    p.appendChild(wrap);
    entry.timer = timer;

    const transfer = el("form", { class: "transfer" });
    const tq = el("select", { id: "transfer-queue-" + id });
    tq.appendChild(el("option", { value: "", text: S.choose }));
    PAGE.queues.forEach((q) => tq.appendChild(el("option", { value: q.name, text: q.label })));
    const ta = el("input", { id: "transfer-agent-" + id, type: "number", min: "1" });
    const tn = el("input", { id: "transfer-note-" + id, maxlength: "4000" });
    transfer.appendChild(el("h3", { text: S.transfer }));
    [field(S.transfer_queue, tq), field(S.transfer_agent, ta), field(S.transfer_note, tn)].forEach((f) => transfer.appendChild(f));
    transfer.appendChild(el("button", { type: "submit", class: "secondary", text: S.transfer }));
    transfer.addEventListener("submit", (e) => {
      e.preventDefault();
      const payload = { interaction_id: id, note: tn.value };
      if (ta.value) payload.agent_id = Number(ta.value); else payload.queue = tq.value || null;
      command("transfer", payload);
    });
    p.appendChild(transfer);

    const follow = el("form", { class: "follow-up" });
    const due = el("input", { id: "due-" + id, type: "datetime-local", required: "required" });
    const fnote = el("input", { id: "follow-note-" + id, maxlength: "4000", required: "required" });
    follow.appendChild(el("h3", { text: S.follow_up }));
    follow.appendChild(field(S.due_at, due));
    follow.appendChild(field(S.notes, fnote));
    follow.appendChild(el("button", { type: "submit", class: "secondary", text: S.create_task }));
    follow.addEventListener("submit", (e) => {
      e.preventDefault();
      const at = new Date(due.value);
      command("follow_up", { interaction_id: id, due_at: at.toISOString(), note: fnote.value }).then((a) => a.ok && notice(S.task_created));
    });
    p.appendChild(follow);
  }

  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
      headers: { "Content-Type": "application/json", "X-CSRFToken": PAGE.csrf } })
      .then((r) => { if (!r.ok) notice(fmt(S.error, { code: r.status }), true); return r.ok; });
  }

  // Call controls go to the voice channel's endpoints; hold and mute are toggles.
  function callControls(id) {
    const urls = PAGE.call_controls || {};
    const buttons = [];
    const toggle = (action, onText, offText, send) => {
      const b = el("button", { type: "button", class: "secondary call-" + action, "aria-pressed": "false", text: onText });
      b.addEventListener("click", () => {
        const on = b.getAttribute("aria-pressed") !== "true";
        send(on).then((ok) => { if (ok) { b.setAttribute("aria-pressed", on ? "true" : "false"); b.textContent = on ? offText : onText; } });
      });
      buttons.push(b);
    };
    if (urls.hold) toggle("hold", S.hold, S.resume, (on) => post(urls.hold.replace("{id}", id), { on: on }));
    if (urls.mute) {
      toggle("mute", S.mute, S.unmute, (on) => {
        if (PHONE) PHONE.mute(id, on); // the browser stops sending audio; the desk logs it
        return post(urls.mute, { interaction_id: id, on: on });
      });
    }
    if (urls.hangup) {
      const b = el("button", { type: "button", class: "danger call-hangup", text: S.hang_up });
      b.addEventListener("click", () => post(urls.hangup.replace("{id}", id)).then(() => { if (PHONE) PHONE.hangup(id); }));
      buttons.push(b);
    }
    return buttons;
  }

  function linkSearch(id) {
    return function () {
      const box = el("form", { class: "link-search" });
      const q = el("input", { id: "link-q-" + id, type: "search", placeholder: S.search_placeholder, minlength: "2" });
      const results = el("ul", { class: "results", "aria-live": "polite" });
      box.appendChild(el("h3", { text: S.link_customer }));
      box.appendChild(field(S.search, q));
      box.appendChild(el("button", { type: "submit", class: "secondary", text: S.search }));
      box.appendChild(results);
      box.addEventListener("submit", (e) => {
        e.preventDefault();
        command("search", { q: q.value }).then((ack) => {
          results.textContent = "";
          if (!ack.ok) return;
          if (!ack.customers.length) results.appendChild(el("li", { class: "muted", text: S.no_results }));
          ack.customers.forEach((c) => {
            const b = el("button", { type: "button", class: "secondary", text: S.link });
            b.addEventListener("click", () => command("link_customer", { interaction_id: id, customer_id: c.id }));
            results.appendChild(el("li", {}, [el("span", { text: c.name + " · " + c.tier + " · " + [].concat(c.phones, c.emails).join(", ") + " " }), b]));
          });
        });
      });
      return box;
    };
  }

  function updatePanel(entry, w) {
    const pop = w.screenpop || (entry.popShown ? null : state.pops.get(w.interaction_id));
    if (pop) {
      render(entry.pop, pop, S, LANG, { linkSearch: linkSearch(w.interaction_id) });
      entry.popShown = true;
    }
    if (document.activeElement !== entry.notes) entry.notes.value = w.notes || "";
    entry.panel.dataset.state = w.state;
    clearInterval(state.timers.get(w.interaction_id));
    if (w.state === "wrap_up" && w.wrap_up_started_at) {
      const ends = Date.parse(w.wrap_up_started_at) + w.wrap_up_s * 1000;
      const tick = () => {
        const left = Math.round((ends - Date.now()) / 1000);
        entry.timer.textContent = left > 0 ? fmt(S.wrap_up_left, { s: left }) : S.wrap_up_over;
      };
      tick();
      state.timers.set(w.interaction_id, setInterval(tick, 1000));
    } else {
      entry.timer.textContent = "";
    }
  }
})();
