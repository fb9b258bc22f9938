/* The chat panel and the email composer of a workspace tab. Everything goes through the /agent socket
   commands (chat_history, chat_send, chat_typing, chat_read, email_thread, email_preview, email_send,
   email_cancel); the server checks the contact is this agent's. Text is only ever set as text. */
(function () {
  "use strict";
  const TYPING_IDLE_MS = 4000;
  const panels = new Map(); // interaction id -> panel state

  function clientId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "agent-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function field(ctx, labelText, input) {
    return ctx.el("div", { class: "field" }, [ctx.el("label", { for: input.id, text: labelText }), input]);
  }

  // ---------------------------------------------------------------- chat
  function chatPanel(id, root, ctx) {
    const { el, S } = ctx;
    const log = el("ol", { class: "chat-log", id: "chat-log-" + id, "aria-label": S.chat_log, "aria-live": "polite" });
    const typingNote = el("p", { class: "chat-typing muted", id: "chat-typing-" + id, "aria-live": "polite" });
    const input = el("textarea", { id: "chat-input-" + id, rows: "2", maxlength: "2000" });
    const send = el("button", { type: "submit", class: "chat-send", text: S.send });
    const form = el("form", { class: "chat-form" }, [field(ctx, S.chat_input, input), send]);
    root.appendChild(el("section", { class: "chat-panel", "aria-label": S.channel_chat }, [log, typingNote, form]));
    const st = { kind: "chat", id: id, log: log, typingNote: typingNote, input: input, ctx: ctx, seen: new Map(),
                 readUpto: 0, customerReadUpto: 0, typingTimer: null, typingOn: false, ended: false };
    panels.set(id, st);

    function stopTyping() {
      clearTimeout(st.typingTimer);
      if (st.typingOn) { st.typingOn = false; ctx.command("chat_typing", { interaction_id: id, on: false }); }
    }
    input.addEventListener("input", () => {
      ctx.typing(id);
      if (!st.typingOn && input.value) { st.typingOn = true; ctx.command("chat_typing", { interaction_id: id, on: true }); }
      clearTimeout(st.typingTimer);
      st.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text || st.ended) return;
      const payload = { interaction_id: id, client_id: clientId(), text: text };
      send.disabled = true;
      stopTyping();
      ctx.command("chat_send", payload).then((ack) => {
        send.disabled = false;
        if (ack.ok) { input.value = ""; addChatMessage(st, ack.message); input.focus(); }
      });
    });
    refreshChat(st);
  }

  function refreshChat(st) {
    st.ctx.command("chat_history", { interaction_id: st.id }).then((ack) => {
      if (!ack.ok) return;
      st.customerReadUpto = ack.chat.customer_read_upto || 0;
      ack.chat.messages.forEach((m) => addChatMessage(st, m));
      if (ack.chat.ended) chatEnded(st);
      markRead(st);
    });
  }

  function addChatMessage(st, m) {
    const { el, S } = st.ctx;
    let item = st.seen.get(m.id);
    if (!item) {
      item = el("li", { class: "chat-msg from-" + m.sender, "data-id": m.id }, [
        el("span", { class: "who", text: S["sender_" + m.sender] || m.sender }),
        el("time", { datetime: m.at, text: st.ctx.when(m.at, st.ctx.LANG) }),
        el("p", { class: "body", text: m.body }),
      ]);
      if (m.attachment && m.attachment.url) {
        item.appendChild(el("a", { href: m.attachment.url, target: "_blank", rel: "noopener", text: m.attachment.filename }));
      }
      const older = [...st.seen.keys()].filter((k) => k > m.id).sort((a, b) => a - b)[0];
      st.log.insertBefore(item, older !== undefined ? st.seen.get(older) : null);
      st.seen.set(m.id, item);
    }
    showReceipts(st);
  }

  function showReceipts(st) {
    st.seen.forEach((item, msgId) => {
      if (!item.classList.contains("from-agent")) return;
      const read = msgId <= st.customerReadUpto;
      let mark = item.querySelector(".receipt");
      if (read && !mark) item.appendChild(st.ctx.el("span", { class: "receipt", text: st.ctx.S.chat_read }));
      if (!read && mark) mark.remove();
    });
  }

  function markRead(st) {
    const latest = Math.max(0, ...st.seen.keys());
    if (latest > st.readUpto) {
      st.readUpto = latest;
      st.ctx.command("chat_read", { interaction_id: st.id, upto: latest });
    }
  }

  function chatEnded(st) {
    st.ended = true;
    st.typingNote.textContent = st.ctx.S.chat_ended;
    st.input.disabled = true;
  }

  function onChatEvent(name, p) {
    const st = panels.get(p.interaction_id);
    if (!st || st.kind !== "chat") return;
    if (name === "chat.message") {
      addChatMessage(st, p.message);
      if (p.message.sender === "customer") st.typingNote.textContent = "";
      if (!document.hidden) markRead(st);
    } else if (name === "chat.typing" && p.sender === "customer") {
      st.typingNote.textContent = p.on ? st.ctx.S.chat_typing : "";
    } else if (name === "chat.read" && p.reader === "customer") {
      st.customerReadUpto = Math.max(st.customerReadUpto, p.upto);
      showReceipts(st);
    } else if (name === "chat.ended") {
      chatEnded(st);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) panels.forEach((st) => { if (st.kind === "chat") markRead(st); });
  });

  // ---------------------------------------------------------------- email
  function emailComposer(id, root, ctx) {
    const { el, S } = ctx;
    const thread = el("ol", { class: "email-thread", id: "email-thread-" + id, "aria-label": S.email_thread });
    const caseLink = el("a", { class: "open-case", href: "/email/cases/" + id, target: "_blank", rel: "noopener", text: S.email_open_case });
    const warning = el("div", { class: "email-warning", id: "email-warning-" + id, role: "alert" });
    const cc = el("input", { id: "email-cc-" + id, type: "text", autocomplete: "off" });
    const body = el("textarea", { id: "email-body-" + id, rows: "6" });
    const previewBtn = el("button", { type: "button", class: "secondary email-preview", text: S.email_preview });
    const sendBtn = el("button", { type: "submit", class: "email-send", text: S.email_send });
    const preview = el("div", { class: "email-preview-box", id: "email-preview-" + id, hidden: "hidden" });
    const status = el("p", { class: "email-status", id: "email-status-" + id, role: "status", "aria-live": "polite" });
    const form = el("form", { class: "email-form" }, [field(ctx, S.email_cc, cc), field(ctx, S.email_body, body),
                                                      el("div", { class: "controls" }, [previewBtn, sendBtn])]);
    root.appendChild(el("section", { class: "email-composer", "aria-label": S.channel_email },
                        [el("h3", { text: S.email_thread }), caseLink, thread, warning, form, preview, status]));
    const st = { kind: "email", id: id, ctx: ctx, thread: thread, warning: warning, body: body, status: status,
                 seenUpto: null, shown: new Set(), countdown: null };
    panels.set(id, st);

    body.addEventListener("input", () => ctx.typing(id));
    previewBtn.addEventListener("click", () => {
      ctx.command("email_preview", { interaction_id: id, body: body.value }).then((ack) => {
        if (!ack.ok) return;
        preview.textContent = "";
        preview.appendChild(el("p", { class: "subject", text: ack.preview.subject }));
        preview.appendChild(el("pre", { text: ack.preview.body }));
        preview.hidden = false;
      });
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!body.value.trim()) { ctx.notice(S.error_empty, true); body.focus(); return; }
      const payload = { interaction_id: id, body: body.value, seen_upto: st.seenUpto,
                        cc: cc.value.split(",").map((c) => c.trim()).filter(Boolean) };
      sendBtn.disabled = true;
      ctx.command("email_send", payload).then((ack) => {
        sendBtn.disabled = false;
        if (ack.ok) { scheduled(st, ack, body.value); body.value = ""; preview.hidden = true; warning.textContent = ""; return; }
        if (ack.error === "newer_messages") newerMessages(st, ack.messages);
      });
    });
    refreshEmail(st);
  }

  function addEmailMessage(st, m) {
    if (st.shown.has(m.id)) return;
    const { el, S } = st.ctx;
    st.shown.add(m.id);
    st.thread.appendChild(el("li", { class: "email-msg " + m.direction + " kind-" + m.kind, "data-id": m.id }, [
      el("p", { class: "meta", text: (m.from_name ? m.from_name + " <" + m.from + ">" : m.from) + " · " + st.ctx.when(m.at, st.ctx.LANG) }),
      el("p", { class: "subject", text: m.subject }),
      el("pre", { class: "text", text: m.text }),
    ]));
    if (m.direction === "in" && m.kind === "customer") st.seenUpto = Math.max(st.seenUpto || 0, m.id);
  }

  function refreshEmail(st) {
    st.ctx.command("email_thread", { interaction_id: st.id }).then((ack) => {
      if (!ack.ok) return;
      ack.email.messages.forEach((m) => addEmailMessage(st, m));
    });
  }

  function newerMessages(st, messages) {
    const { el, S } = st.ctx;
    st.warning.textContent = "";
    st.warning.appendChild(el("p", { text: S.email_newer }));
    messages.forEach((m) => {
      st.warning.appendChild(el("blockquote", { class: "newer", text: m.text }));
      addEmailMessage(st, m); // now seen: the next send goes
    });
  }

  function scheduled(st, ack, text) {
    const { el, S, fmt } = st.ctx;
    const msg = ack.message;
    const due = Date.parse(msg.send_after);
    st.status.textContent = "";
    const label = el("span", { class: "countdown" });
    const undo = el("button", { type: "button", class: "secondary email-undo", text: S.email_undo });
    st.status.appendChild(label);
    st.status.appendChild(undo);
    clearInterval(st.countdown);
    const tick = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      if (left > 0) { label.textContent = fmt(S.email_sending_in, { s: left }) + " "; return; }
      clearInterval(st.countdown);
      st.status.textContent = S.email_sent;
      refreshEmail(st);
    };
    tick();
    st.countdown = setInterval(tick, 500);
    undo.addEventListener("click", () => {
      st.ctx.command("email_cancel", { interaction_id: st.id, message_id: msg.id }).then((a) => {
        if (!a.ok) return;
        clearInterval(st.countdown);
        st.status.textContent = S.email_cancelled;
        if (!st.body.value) st.body.value = text;
        st.body.focus();
      });
    });
  }

  // ---------------------------------------------------------------- tabs
  function attach(id, channel, root, ctx) {
    if (panels.has(id)) return;
    if (channel === "chat") chatPanel(id, root, ctx);
    else if (channel === "email") emailComposer(id, root, ctx);
  }

  function refresh(id) {
    const st = panels.get(id);
    if (!st) return;
    if (st.kind === "chat") refreshChat(st); else refreshEmail(st);
  }

  function detach(id) {
    const st = panels.get(id);
    if (!st) return;
    clearTimeout(st.typingTimer);
    clearInterval(st.countdown);
    panels.delete(id);
  }

  window.DeskChannels = { attach: attach, refresh: refresh, detach: detach, onChatEvent: onChatEvent };
})();
