// The supervisor's live wallboard: renders the /supervisor namespace's "wallboard" snapshots and sends
// the supervisor's actions. Every visible string comes from the page (#sv-strings), never from here.
(function () {
  "use strict";
  var S = JSON.parse(document.getElementById("sv-strings").textContent);
  var QUEUE_NAMES = JSON.parse(document.getElementById("sv-queue-names").textContent);
  var LANG = JSON.parse(document.getElementById("sv-lang").textContent);
  var statusEl = document.getElementById("sv-status");
  var messageEl = document.getElementById("sv-message");
  var last = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function secs(v) { return v === null || v === undefined ? "—" : Math.round(v) + " s"; }
  function duration(s) {
    if (s === null || s === undefined) { return "—"; }
    var m = Math.floor(s / 60), r = s % 60;
    return m ? m + ":" + (r < 10 ? "0" : "") + r : r + " s";
  }
  function label(code) { return S[code] || code; }
  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  }
  function queueLabel(q) { return LANG === "zh" ? q.label_zh : q.label_en; }
  function head(table, cols) {
    var thead = table.querySelector("thead");
    thead.textContent = "";
    thead.appendChild(el("tr", {}, cols.map(function (c) { return el("th", {scope: "col", text: c}); })));
  }
  function say(text) { messageEl.textContent = text; }

  function renderAlerts(data) {
    var list = document.getElementById("sv-alerts");
    list.textContent = "";
    if (!data.alerts.length) { list.appendChild(el("li", {"class": "ok", text: S.no_alerts})); return; }
    var byName = {};
    data.queues.forEach(function (q) { byName[q.name] = q; });
    data.alerts.forEach(function (a) {
      list.appendChild(el("li", {"data-queue": a.queue, text: format(S.alert_sl, {
        queue: queueLabel(byName[a.queue] || {label_en: a.queue, label_zh: a.queue}), value: pct(a.value), target: pct(a.target)})}));
    });
  }

  function renderQueues(data) {
    var table = document.getElementById("sv-queues");
    head(table, [S.queue, S.waiting, S.longest_wait, S.service_level, S.target, S.asa, S.aht, S.abandonment, S.offered, S.answered]);
    var body = table.querySelector("tbody");
    body.textContent = "";
    data.queues.forEach(function (q) {
      var row = el("tr", {"data-queue": q.name, "class": q.breached ? "breached" : ""}, [
        el("th", {scope: "row", text: queueLabel(q)}),
        el("td", {"class": "waiting", text: String(q.waiting)}), el("td", {text: duration(q.longest_wait_s)}),
        el("td", {"class": "sl", text: pct(q.service_level)}), el("td", {text: pct(q.target) + " / " + q.within_s + " s"}),
        el("td", {text: secs(q.asa_s)}), el("td", {text: secs(q.aht_s)}), el("td", {text: pct(q.abandon_rate)}),
        el("td", {"class": "offered", text: String(q.offered)}), el("td", {text: String(q.answered)})]);
      body.appendChild(row);
    });
  }

  function targetSelect(data, current) {
    var select = el("select", {"aria-label": S.move_to}, [el("option", {value: "", text: S.choose})]);
    var gq = el("optgroup", {label: S.to_queue});
    data.queues.forEach(function (q) {
      if (q.name !== current) { gq.appendChild(el("option", {value: "queue:" + q.name, text: queueLabel(q)})); }
    });
    var ga = el("optgroup", {label: S.to_agent});
    data.agents.forEach(function (a) { ga.appendChild(el("option", {value: "agent:" + a.id, text: a.name})); });
    select.appendChild(gq); select.appendChild(ga);
    return select;
  }

  function renderWaiting(data) {
    var box = document.getElementById("sv-waiting");
    box.textContent = "";
    var any = false;
    data.queues.forEach(function (q) {
      if (!q.contacts.length) { return; }
      any = true;
      var table = el("table", {"class": "sv-table", "data-queue": q.name}, [el("caption", {text: queueLabel(q)}), el("thead"), el("tbody")]);
      head(table, [S.contact, S.channel, S.wait, S.priority, S.move_to]);
      q.contacts.forEach(function (c) {
        var select = targetSelect(data, q.name);
        var button = el("button", {type: "button", text: S.move});
        button.addEventListener("click", function () {
          var v = select.value;
          if (!v) { say(S.error_target_required); return; }
          var payload = {interaction_id: c.id, note: ""};
          if (v.indexOf("queue:") === 0) { payload.queue = v.slice(6); } else { payload.agent_id = parseInt(v.slice(6), 10); }
          act("move_contact", payload);
        });
        table.querySelector("tbody").appendChild(el("tr", {"data-contact": String(c.id)}, [
          el("th", {scope: "row", text: "#" + c.id}), el("td", {text: label(c.channel)}), el("td", {text: duration(c.wait_s)}),
          el("td", {text: String(c.priority)}), el("td", {}, [select, button])]));
      });
      box.appendChild(table);
    });
    if (!any) { box.appendChild(el("p", {text: S.no_waiting})); }
  }

  function renderAgents(data) {
    var counts = Object.keys(data.agents_by_state).sort().map(function (k) { return label(k) + ": " + data.agents_by_state[k]; });
    document.getElementById("sv-agent-counts").textContent = counts.join(" · ");
    var table = document.getElementById("sv-agents");
    head(table, [S.agent, S.state, S.time_in_state, S.open_contacts, S.actions]);
    var body = table.querySelector("tbody");
    body.textContent = "";
    data.agents.forEach(function (a) {
      var select = el("select", {"aria-label": S.state + " — " + a.name}, ["available", "break", "offline"].map(function (p) {
        var o = el("option", {value: p, text: label(p)});
        if (p === a.presence) { o.selected = true; }
        return o;
      }));
      var reason = el("input", {type: "text", maxlength: "48", "aria-label": S.reason + " — " + a.name, placeholder: S.reason});
      var button = el("button", {type: "button", text: S.apply});
      button.addEventListener("click", function () {
        act("set_agent_state", {agent_id: a.id, presence: select.value, reason: reason.value || null});
      });
      var state = label(a.presence) + (a.reason ? " (" + a.reason + ")" : "") + (a.open_contacts ? " · " + S.busy : "");
      body.appendChild(el("tr", {"data-agent": String(a.id)}, [
        el("th", {scope: "row", text: a.name}), el("td", {"class": "presence", text: state}),
        el("td", {text: duration(a.in_state_s)}), el("td", {text: String(a.open_contacts)}),
        el("td", {}, [select, reason, button])]));
    });
  }

  function render(data) {
    last = data;
    renderAlerts(data); renderQueues(data); renderWaiting(data); renderAgents(data);
    statusEl.textContent = S.connected + " · " + S.updated + " " + new Date(data.at).toLocaleTimeString();
    document.body.setAttribute("data-wallboard-at", data.at);
  }

  var socket = io("/supervisor", {transports: ["websocket", "polling"]});
  function act(name, payload) {
    socket.emit(name, payload, function (ack) {
      if (ack && ack.ok) { say(S.done); socket.emit("refresh", {}, function (r) { if (r && r.ok) { render(r.wallboard); } }); }
      else { say(label("error_" + ((ack && ack.error) || "refused"))); }
    });
  }
  socket.on("connect", function () { statusEl.className = "sv-status live"; statusEl.textContent = S.connected; });
  socket.on("disconnect", function () { statusEl.className = "sv-status"; statusEl.textContent = S.disconnected; });
  socket.on("connect_error", function () { statusEl.className = "sv-status"; statusEl.textContent = S.disconnected; });
  socket.on("wallboard", render);
  window.deskWallboard = {last: function () { return last; }, queues: QUEUE_NAMES};
})();
