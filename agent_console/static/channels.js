/* The chat panel and the email composer of a workspace tab. Everything goes through the /agent socket
   commands (chat_history, chat_send, chat_typing, chat_read, email_thread, email_preview, email_send,
   email_cancel, reply_template); the server checks the contact is this agent's. Text is only ever set
   as text.
   Newer-message guard (both channels): a reply carries ``seen_upto``, the newest customer message the
   agent had seen when they started the draft. When the customer wrote after it, the server holds the
   reply (nothing stored) and answers "newer_messages" with them; the panel shows them with "Send
   anyway" and "Edit reply". Once shown they count as seen, so the next send goes. */
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

  // ---------------------------------------------------------------- newer-message guard
  function replyGuard(input) {
    const g = { latest: 0, draftSeen: null };
    input.addEventListener("input", () => {
      if (!input.value.trim()) g.draftSeen = null;
      else if (g.draftSeen === null) g.draftSeen = g.latest;
    });
    return g;
  }

  function customerSeen(g, id) { g.latest = Math.max(g.latest, id); }
  function seenUpto(g) { return g.draftSeen === null ? g.latest : g.draftSeen; }
  function draftSent(g) { g.draftSeen = null; }

  function clearWarning(st) { st.warning.textContent = ""; st.warning.hidden = true; }

  /* Show the customer's newer messages; they now count as seen. */
  function showNewer(st, messages, textOf, sendAnyway) {
    const { el, S } = st.ctx;
    const top = Math.max(0, ...messages.map((m) => m.id));
    customerSeen(st.guard, top);
    if (st.guard.draftSeen !== null) st.guard.draftSeen = Math.max(st.guard.draftSeen, top);
    st.warning.textContent = "";
    st.warning.appendChild(el("p", { text: S.newer_warning }));
    messages.forEach((m) => st.warning.appendChild(el("blockquote", { class: "newer", text: textOf(m) })));
    const anyway = el("button", { type: "button", class: "send-anyway", text: S.send_anyway });
    const edit = el("button", { type: "button", class: "secondary edit-reply", text: S.edit_reply });
    anyway.addEventListener("click", () => { clearWarning(st); sendAnyway(); });
    edit.addEventListener("click", () => { clearWarning(st); st.input.focus(); });
    st.warning.appendChild(el("div", { class: "controls" }, [anyway, edit]));
    st.warning.hidden = false;
    anyway.focus();
  }

  // ---------------------------------------------------------------- chat
  function chatPanel(id, root, ctx) {
    const { el, S } = ctx;
    const log = el("ol", { class: "chat-log", id: "chat-log-" + id, "aria-label": S.chat_log, "aria-live": "polite" });
    const typingNote = el("p", { class: "chat-typing muted", id: "chat-typing-" + id, "aria-live": "polite" });
    const input = el("textarea", { id: "chat-input-" + id, rows: "2", maxlength: "2000" });
    const send = el("button", { type: "submit", class: "chat-send", text: S.send });
    const warning = el("div", { class: "newer-warning", id: "chat-warning-" + id, role: "alert", hidden: "hidden" });
    const form = el("form", { class: "chat-form" }, [field(ctx, S.chat_input, input), send]);
    const pickerBox = el("div", { class: "template-picker-box" });
    root.appendChild(el("section", { class: "chat-panel", "aria-label": S.channel_chat },
                        [log, typingNote, warning, pickerBox, form]));
    const st = { kind: "chat", id: id, log: log, typingNote: typingNote, input: input, ctx: ctx, seen: new Map(),
                 readUpto: 0, customerReadUpto: 0, typingTimer: null, typingOn: false, ended: false,
                 warning: warning, guard: replyGuard(input) };
    templatePicker(st, pickerBox);
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
      const payload = { interaction_id: id, client_id: clientId(), text: text, seen_upto: seenUpto(st.guard) };
      send.disabled = true;
      stopTyping();
      ctx.command("chat_send", payload).then((ack) => {
        send.disabled = false;
        if (ack.ok) {
          input.value = ""; draftSent(st.guard); clearWarning(st); addChatMessage(st, ack.message); input.focus();
        } else if (ack.error === "newer_messages") {
          ack.messages.forEach((m) => addChatMessage(st, m));
          showNewer(st, ack.messages, (m) => m.body, () => form.requestSubmit());
        }
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
    if (m.sender === "customer") customerSeen(st.guard, m.id);
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
    const warning = el("div", { class: "email-warning newer-warning", id: "email-warning-" + id, role: "alert",
                                hidden: "hidden" });
    const cc = el("input", { id: "email-cc-" + id, type: "text", autocomplete: "off" });
    const body = el("textarea", { id: "email-body-" + id, rows: "6" });
    const previewBtn = el("button", { type: "button", class: "secondary email-preview", text: S.email_preview });
    const sendBtn = el("button", { type: "submit", class: "email-send", text: S.email_send });
    const preview = el("div", { class: "email-preview-box", id: "email-preview-" + id, hidden: "hidden" });
    const status = el("p", { class: "email-status", id: "email-status-" + id, role: "status", "aria-live": "polite" });
    const pickerBox = el("div", { class: "template-picker-box" });
    const form = el("form", { class: "email-form" }, [field(ctx, S.email_cc, cc), pickerBox,
                                                      field(ctx, S.email_body, body),
                                                      el("div", { class: "controls" }, [previewBtn, sendBtn])]);
    root.appendChild(el("section", { class: "email-composer", "aria-label": S.channel_email },
                        [el("h3", { text: S.email_thread }), caseLink, thread, warning, form, preview, status]));
    const st = { kind: "email", id: id, ctx: ctx, thread: thread, warning: warning, body: body, input: body,
                 status: status, guard: replyGuard(body), shown: new Set(), countdown: null };
    panels.set(id, st);
    templatePicker(st, pickerBox);

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
      const payload = { interaction_id: id, body: body.value, seen_upto: seenUpto(st.guard),
                        cc: cc.value.split(",").map((c) => c.trim()).filter(Boolean) };
      sendBtn.disabled = true;
      ctx.command("email_send", payload).then((ack) => {
        sendBtn.disabled = false;
        if (ack.ok) {
          scheduled(st, ack, body.value); body.value = ""; draftSent(st.guard); preview.hidden = true; clearWarning(st);
          return;
        }
        if (ack.error === "newer_messages") {
          ack.messages.forEach((m) => addEmailMessage(st, m));
          showNewer(st, ack.messages, (m) => m.text, () => form.requestSubmit());
        }
      });
    });
    refreshEmail(st);
  }

  function addEmailMessage(st, m) {
    if (st.shown.has(m.id)) return;
    const { el, S } = st.ctx;
    st.shown.add(m.id);
    if (m.direction === "in" && m.kind === "customer") customerSeen(st.guard, m.id);
    st.thread.appendChild(el("li", { class: "email-msg " + m.direction + " kind-" + m.kind, "data-id": m.id }, [
      el("p", { class: "meta", text: (m.from_name ? m.from_name + " <" + m.from + ">" : m.from) + " · " + st.ctx.when(m.at, st.ctx.LANG) }),
      el("p", { class: "subject", text: m.subject }),
      el("pre", { class: "text", text: m.text }),
    ]));
  }

  function refreshEmail(st) {
    st.ctx.command("email_thread", { interaction_id: st.id }).then((ack) => {
      if (!ack.ok) return;
      ack.email.messages.forEach((m) => addEmailMessage(st, m));
    });
  }

  /* A customer's email landed on this case while it is open here (app.channels.email.live). */
  function onEmailEvent(name, p) {
    const st = panels.get(p.interaction_id);
    if (!st || st.kind !== "email" || st.shown.has(p.message.id)) return;
    addEmailMessage(st, p.message);
    st.ctx.notice(st.ctx.S.email_arrived);
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

  // ---------------------------------------------------------------- reply templates
  /* "Insert a template": the desk's canned replies (listed in the page), rendered by the server for
     this contact in the customer's language, inserted at the cursor for the agent to edit. */
  function templatePicker(st, box) {
    const { el, S } = st.ctx;
    const choices = st.ctx.templates || [];
    if (!choices.length) return;
    const select = el("select", { id: st.kind + "-template-" + st.id, class: "template-picker" });
    select.appendChild(el("option", { value: "", text: S.choose }));
    choices.forEach((t) => select.appendChild(el("option", { value: t.key, text: t.label })));
    const insert = el("button", { type: "button", class: "secondary insert-template", text: S.template_insert });
    insert.addEventListener("click", () => {
      if (!select.value) { select.focus(); return; }
      st.ctx.command("reply_template", { interaction_id: st.id, key: select.value }).then((ack) => {
        if (!ack.ok) return;
        insertText(st.input, ack.template.body);
        select.value = "";
      });
    });
    box.appendChild(el("div", { class: "template-picker-row" }, [field(st.ctx, S.template_pick, select), insert]));
  }

  function insertText(input, text) {
    const start = input.value ? input.selectionStart : 0;
    const end = input.value ? input.selectionEnd : 0;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.focus();
    input.setSelectionRange(start + text.length, start + text.length);
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

  window.DeskChannels = { attach: attach, refresh: refresh, detach: detach, onChatEvent: onChatEvent,
                          onEmailEvent: onEmailEvent };
})();
