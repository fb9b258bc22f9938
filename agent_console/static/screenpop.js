/* Renders a screen-pop (agent_console/screenpop.py) into the page. Data is only ever set as text,
   never as HTML, so nothing a customer typed can run in the agent's browser. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined) return;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => c && node.appendChild(c));
    return node;
  }

  function fmt(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, (_, k) => (values && k in values ? values[k] : ""));
  }

  function money(cents, currency, lang) {
    if (cents === null || cents === undefined) return "";
    try {
      return new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en-GB", { style: "currency", currency: currency || "CNY" })
        .format(cents / 100);
    } catch (e) {
      return (cents / 100).toFixed(2) + " " + (currency || "");
    }
  }

  function when(iso, lang) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "medium", timeStyle: "short" });
  }

  function pick(labels, lang) {
    if (!labels) return "";
    if (typeof labels === "string") return labels;
    return labels[lang] || labels.en || "";
  }

  function section(title, body, cls) {
    return el("section", { class: "pop-section " + (cls || "") }, [el("h3", { text: title }), body]);
  }

  function list(items, render, emptyText) {
    if (!items || !items.length) return el("p", { class: "muted", text: emptyText });
    return el("ul", {}, items.map((item) => el("li", {}, [render(item)])));
  }

  function reasonsList(reasons, lang, S) {
    return list(reasons, (r) => el("span", {
      text: (r.points !== undefined ? (r.points > 0 ? "+" : "") + r.points + " · " : "") + (pick({ en: r.en, zh: r.zh }, lang) || r.code),
    }), S.none);
  }

  function identityPart(pop, S, lang) {
    const id = pop.identification;
    const c = pop.customer && pop.customer.customer;
    const v = pop.customer && pop.customer.value;
    if (!c) {
      return el("div", { class: "identity" }, [el("p", { class: "who unknown", text: S.unknown_caller + (id.caller ? " · " + id.caller : "") })]);
    }
    const dl = el("dl", { class: "facts" });
    const add = (k, val) => { if (val === undefined || val === null || val === "") return; dl.appendChild(el("dt", { text: k })); dl.appendChild(el("dd", { text: val })); };
    add(S.type, pick(c.kind_label, lang) + (c.organisation ? " · " + c.organisation : ""));
    add(S.tier, pick(v && v.tier_label, lang) || c.tier);
    if (v && v.computed) {
      add(S.rfm, v.rfm.code);
      add(S.ltv, money(v.ltv_cents, pop.currency, lang));
      add(S.loyalty, pick(v.loyalty_label, lang));
      add(S.churn_risk, S["churn_" + v.churn_risk] || v.churn_risk);
    } else {
      add(S.rfm, S.not_computed);
    }
    const sat = pop.customer.satisfaction || {};
    if (sat.csat_count) add(S.csat, sat.csat_avg + " (" + sat.csat_count + ")");
    if (sat.nps_count) add(S.nps, sat.nps_avg + " (" + sat.nps_count + ")");
    const who = el("p", { class: "who" + (c.is_prospect ? " prospect" : ""), text: c.name + (c.is_prospect ? " · " + S.prospect : "") });
    const contact = el("p", { class: "muted", text: [].concat((c.phones || []).map((p) => p.display || p.e164), c.emails || []).join(" · ") });
    const reasons = [];
    if (v) {
      if (Array.isArray(v.reasons)) reasons.push(...v.reasons);
      else Object.values(v.reasons || {}).forEach((rs) => Array.isArray(rs) && reasons.push(...rs));
    }
    return el("div", { class: "identity" }, [who, contact, dl, section(S.value_reasons, reasonsList(reasons, lang, S), "small")]);
  }

  function ivrPart(ivr, collectedText, S) {
    const body = el("div");
    if (!ivr.used_ivr) body.appendChild(el("p", { class: "muted", text: S.ivr_none }));
    else {
      body.appendChild(el("p", { class: "ivr-path", text: S.ivr_path + ": " + ivr.path.map((p) => p.node + (p.choice ? " [" + p.choice + "]" : "")).join(" → ") }));
      if (ivr.self_service.length) body.appendChild(el("p", { text: S.self_service + ": " + ivr.self_service.map((s) => s.lookup + " " + (s.reference || "") + " (" + (s.found ? S.found : S.not_found) + ")").join("; ") }));
      if ((ivr.complaints || []).length) body.appendChild(el("p", { class: "ivr-complaints", text: S.ivr_complaints + ": " + ivr.complaints.map((c) => [c.reference, c.level, c.category].filter(Boolean).join(" · ")).join("; ") }));
    }
    if (ivr.language) body.appendChild(el("p", { text: S.ivr_language + ": " + ivr.language.language }));
    if (collectedText) body.appendChild(el("p", { class: "muted", text: collectedText }));
    return body;
  }

  function render(container, pop, S, lang, hooks) {
    container.textContent = "";
    container.appendChild(identityPart(pop, S, lang));
    const id = pop.identification;
    if (id.can_link && hooks && hooks.linkSearch) container.appendChild(hooks.linkSearch(pop));
    const i = pop.interaction;
    const meta = el("p", { class: "meta", text: [S["channel_" + i.channel] || i.channel, pick(i.queue_label, lang), fmt(S.waited, { s: i.waited_s })].filter(Boolean).join(" · ") });
    container.appendChild(meta);
    container.appendChild(section(S.priority_reasons + " (" + S.priority + " " + pop.priority.value + ")", reasonsList(pop.priority.reasons, lang, S), "priority"));
    const ivr = pop.ivr;
    const collected = Object.entries(ivr.collected || {});
    // a value given in both languages (a follow-up task's subject_en / subject_zh) shows once, in the agent's
    const other = lang === "zh" ? "_en" : "_zh", own = lang === "zh" ? "_zh" : "_en";
    const collectedText = collected.length ? S.collected + ": " + collected.filter(([k]) => !k.endsWith(other))
      .map(([k, v]) => (k.endsWith(own) ? k.slice(0, -own.length) : k) + "=" + v).join(", ") : "";
    if (!ivr.used_ivr && i.channel !== "voice") {  // mail and chat never meet the IVR: only what their intake noted
      if (collectedText) container.appendChild(el("p", { class: "muted collected", text: collectedText }));
    } else container.appendChild(section(S.ivr, ivrPart(ivr, collectedText, S), "ivr"));
    if (!pop.customer) return;
    container.appendChild(section(S.open_complaints, list(pop.customer.complaints, (c) => el("span", {
      text: (c.reference || "#" + c.id) + " · " + (c.level || "") + " · " + (S["complaint_state_" + c.state] || c.state || "") +
        (c.resolve_due_at ? " · " + S.deadline + " " + when(c.resolve_due_at, lang) : ""),
    }), S.none), "complaints"));
    container.appendChild(section(S.last_interactions, list(pop.customer.interactions, (x) => el("span", {
      text: when(x.created_at, lang) + " · " + (S["channel_" + x.channel] || x.channel) + " · " + (S["state_" + x.state] || x.state) +
        (x.subject ? " · " + x.subject : "") + (x.disposition ? " · " + x.disposition : ""),
    }), S.none), "history"));
    container.appendChild(section(S.recent_orders, list(pop.customer.orders, (o) => el("span", {
      text: o.number + " · " + (S["status_" + o.status] || o.status) + " · " + money(o.total_cents, o.currency, lang) + " · " + when(o.placed_at, lang) +
        (o.shipments || []).map((s) => " · " + S.shipment + ": " + s.carrier + " " + (S["status_" + s.status] || s.status) + (s.expected_at ? " (" + when(s.expected_at, lang) + ")" : "")).join(""),
    }), S.none), "orders"));
  }

  window.DeskScreenPop = { render: render, el: el, fmt: fmt, when: when };
})();
