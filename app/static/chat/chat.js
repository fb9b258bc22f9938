/* The customer's chat (inside the desk-served frame). Every text comes from #chat-config (translated by
 * the desk); every message is rendered with textContent, never as HTML. Messages carry a client id and
 * stay in the outbox (also in localStorage) until the server acknowledges them, so a network drop or a
 * reload resends them and the server stores each once. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("chat-config").textContent);
  var S = cfg.strings;
  var TOKEN_KEY = "desk-chat-token", OUTBOX_KEY = "desk-chat-outbox";
  var $ = function (id) { return document.getElementById(id); };
  var rendered = {}, pendingEls = {}, lastAgentRead = 0, lastSeen = 0, statusTimer = null, typingTimer = null;
  var typingOn = false, typingIdle = null, ended = false, currentStatus = null;
  var outbox = loadOutbox();

  function fmt(text, vars) {
    return text.replace(/%\((\w+)\)s/g, function (_, k) { return vars && vars[k] != null ? String(vars[k]) : ""; });
  }
  function token() { return localStorage.getItem(TOKEN_KEY); }
  function loadOutbox() { try { return JSON.parse(localStorage.getItem(OUTBOX_KEY)) || []; } catch (e) { return []; } }
  function saveOutbox() { localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox)); }
  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function tell(open) {
    if (window.parent !== window) { window.parent.postMessage({type: "desk-chat", open: open}, cfg.origin); }
  }
  function openPanel() { document.body.classList.remove("collapsed"); $("chat-panel").hidden = false; tell(true); markRead(); }
  function closePanel() { document.body.classList.add("collapsed"); $("chat-panel").hidden = true; tell(false); }
  function showError(code) { $("chat-error").textContent = S[code] || fmt(S.error, {error: code}); }

  var socket = io("/customer", {
    auth: function (cb) { cb({token: token()}); },
    transports: ["websocket", "polling"],
  });

  function showConversation() {
    $("prechat").hidden = true;
    if ($("topic-pick")) { $("topic-pick").hidden = true; }
    $("conversation").hidden = false;
  }
  function showStart() {
    $("conversation").hidden = true;
    if (cfg.signed_in) { $("topic-pick").hidden = false; } else { $("prechat").hidden = false; }
  }

  function renderMessage(m) {
    if (rendered[m.id]) { return; }
    var li = pendingEls[m.client_id] && m.sender === "customer" ? pendingEls[m.client_id] : document.createElement("li");
    delete pendingEls[m.client_id];
    li.className = m.sender;
    li.dataset.id = m.id;
    li.textContent = "";
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = m.body;
    li.appendChild(text);
    if (m.attachment) {
      var link = document.createElement("a");
      link.href = m.attachment.url + "?token=" + encodeURIComponent(token() || "");
      link.target = "_blank"; link.rel = "noopener";
      link.textContent = " " + m.attachment.filename;
      li.appendChild(link);
    }
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = m.sender === "customer" ? S.sent : (m.sender === "agent" ? S.agent : "");
    li.appendChild(meta);
    rendered[m.id] = li;
    if (!li.parentNode) { $("messages").appendChild(li); }
    $("messages").scrollTop = $("messages").scrollHeight;
    if (m.sender !== "customer") { lastSeen = Math.max(lastSeen, m.id); markRead(); }
    updateReceipts();
  }
  function renderPending(item) {
    var li = document.createElement("li");
    li.className = "customer pending";
    var text = document.createElement("span"); text.className = "text"; text.textContent = item.text;
    var meta = document.createElement("span"); meta.className = "meta"; meta.textContent = S.sending;
    li.appendChild(text); li.appendChild(meta);
    pendingEls[item.client_id] = li;
    $("messages").appendChild(li);
    $("messages").scrollTop = $("messages").scrollHeight;
  }
  function updateReceipts() {
    Object.keys(rendered).forEach(function (id) {
      var li = rendered[id];
      if (li.className === "customer" && Number(id) <= lastAgentRead) { li.querySelector(".meta").textContent = S.read; }
    });
  }
  function markRead() {
    if (lastSeen && !$("chat-panel").hidden && document.visibilityState !== "hidden") {
      socket.emit("read", {upto: lastSeen});
    }
  }
  function renderStatus(st) {
    currentStatus = st;
    var line = "";
    if (st.ended) { line = S.ended; }
    else if (st.mode === "offline") { line = S.offline; }
    else if (st.agent_name) { line = fmt(S.connected, {name: st.agent_name}); }
    else if (st.position) {
      line = fmt(S.queued, {position: st.position});
      if (st.wait_s != null) { line += " " + fmt(S.wait, {minutes: Math.max(1, Math.round(st.wait_s / 60))}); }
    } else { line = S.waiting; }
    if (st.case_reference) { line += " " + fmt(S["case"], {reference: st.case_reference}); }
    $("chat-status").textContent = line;
    lastAgentRead = Math.max(lastAgentRead, st.agent_read_upto || 0);
    updateReceipts();
    if (st.ended) { finish(); }
  }
  function finish() {
    ended = true;
    $("composer").hidden = true;
    $("chat-leave").hidden = true;
    $("chat-new").hidden = false;
    outbox = []; saveOutbox();
  }
  function adopt(reply) {
    showConversation();
    (reply.history || []).forEach(renderMessage);
    renderStatus(reply.status);
    outbox.forEach(function (item) { if (!pendingEls[item.client_id]) { renderPending(item); } });
    flush();
  }
  function refreshStatus() {
    socket.emit("status", {}, function (reply) { if (reply && reply.ok) { renderStatus(reply.status); } });
  }

  function flush() {
    if (ended) { return; }
    outbox.slice().forEach(function (item) {
      socket.timeout(8000).emit("message", item, function (err, reply) {
        if (err) { return; }  // still in the outbox: resent on the next connect
        if (reply && reply.ok) {
          outbox = outbox.filter(function (o) { return o.client_id !== item.client_id; });
          saveOutbox();
          renderMessage(reply.message);
        } else if (reply && reply.error !== "rate_limited") {
          outbox = outbox.filter(function (o) { return o.client_id !== item.client_id; });
          saveOutbox();
          if (pendingEls[item.client_id]) { pendingEls[item.client_id].remove(); delete pendingEls[item.client_id]; }
          showError(reply.error);
        } else if (reply) { showError(reply.error); }
      });
    });
  }
  function send(text, attachmentId) {
    var item = {client_id: newId(), text: text};
    if (attachmentId) { item.attachment_id = attachmentId; }
    outbox.push(item); saveOutbox();
    renderPending(item);
    if (socket.connected) { flush(); }
  }

  socket.on("connect", function () {
    $("chat-error").textContent = "";
    socket.emit("resume", {token: token()}, function (reply) {
      if (reply && reply.ok) { adopt(reply); }
      else if (!ended) { localStorage.removeItem(TOKEN_KEY); showStart(); }
    });
  });
  socket.on("disconnect", function () { $("chat-status").textContent = S.reconnecting; });
  socket.on("message", function (event) { renderMessage(event.message); });
  socket.on("read", function (event) {
    if (event.reader === "agent") { lastAgentRead = Math.max(lastAgentRead, event.upto); updateReceipts(); }
  });
  socket.on("typing", function (event) {
    if (event.sender !== "agent") { return; }
    $("typing").hidden = !event.on;
    clearTimeout(typingTimer);
    if (event.on) { typingTimer = setTimeout(function () { $("typing").hidden = true; }, 6000); }
  });
  socket.on("state", refreshStatus);
  socket.on("ended", function (event) {
    refreshStatus();
    if (event.case_reference) { $("chat-status").textContent = fmt(S["case"], {reference: event.case_reference}); }
    finish();
  });

  function start(payload) {
    payload.language = cfg.lang; payload.origin = cfg.origin;
    socket.emit("start", payload, function (reply) {
      if (!reply || !reply.ok) { $("pc-error").textContent = S[reply && reply.error] || fmt(S.error, {error: reply && reply.error}); return; }
      localStorage.setItem(TOKEN_KEY, reply.token);
      ended = false;
      $("composer").hidden = false; $("chat-leave").hidden = false; $("chat-new").hidden = true;
      adopt(reply);
    });
  }
  $("prechat").addEventListener("submit", function (e) {
    e.preventDefault();
    start({name: $("pc-name").value, email: $("pc-email").value, topic: $("pc-topic").value});
  });
  if ($("si-start")) { $("si-start").addEventListener("click", function () { start({topic: $("si-topic").value}); }); }
  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("chat-input").value.trim();
    if (!text) { return; }
    $("chat-input").value = "";
    setTyping(false);
    send(text);
  });
  $("chat-input").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });
  function setTyping(on) {
    if (on === typingOn) { return; }
    typingOn = on;
    socket.emit("typing", {on: on});
  }
  $("chat-input").addEventListener("input", function () {
    setTyping(true);
    clearTimeout(typingIdle);
    typingIdle = setTimeout(function () { setTyping(false); }, 3000);
  });
  $("chat-file").addEventListener("change", function () {
    var file = $("chat-file").files[0];
    if (!file) { return; }
    if (file.size > cfg.settings.max_bytes) { showError("too_large"); $("chat-file").value = ""; return; }
    var body = new FormData();
    body.append("file", file);
    fetch("/chat/upload", {method: "POST", body: body, credentials: "same-origin",
                           headers: {"X-Chat-Token": token() || "", "X-CSRFToken": cfg.csrf}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        $("chat-file").value = "";
        if (!data.ok) { showError(data.error); return; }
        send($("chat-input").value.trim(), data.attachment.id);
        $("chat-input").value = "";
      })
      .catch(function () { showError("upload"); });
  });
  $("chat-transcript").addEventListener("click", function () {
    socket.emit("transcript", {}, function (reply) {
      if (reply && reply.ok) { $("chat-error").textContent = fmt(S.transcript_sent, {email: reply.email}); }
      else { showError(reply && reply.error); }
    });
  });
  $("chat-leave").addEventListener("click", function () {
    socket.emit("leave", {}, function (reply) {
      if (reply && reply.ok) { refreshStatus(); finish(); }
    });
  });
  $("chat-new").addEventListener("click", function () {
    localStorage.removeItem(TOKEN_KEY);
    rendered = {}; pendingEls = {}; lastSeen = 0; lastAgentRead = 0;
    $("messages").textContent = "";
    socket.disconnect(); socket.connect();
  });
  $("chat-launcher").addEventListener("click", openPanel);
  $("chat-close").addEventListener("click", closePanel);
  document.addEventListener("visibilitychange", markRead);
  statusTimer = setInterval(function () {
    if (socket.connected && currentStatus && !currentStatus.ended && !currentStatus.agent_name) { refreshStatus(); }
  }, cfg.settings.refresh_s * 1000);
  if (window.parent === window) { openPanel(); }
})();
