/* The browser softphone: Twilio's Voice JS SDK (served by the desk from node_modules, loaded only for
   agents whose call leg is the browser). It fetches an access token from the voice channel
   (/api/voice/token: AccessToken + VoiceGrant), builds a Twilio.Device, registers it for incoming calls
   and renews the token before it expires. A call arrives after the agent accepted a voice offer in the
   console (the desk bridges the caller to <Client> agent-N with a <Parameter name="interaction_id">): it is
   answered at once when it matches a voice contact the agent took, otherwise the agent answers or declines it.
   Hold and transfer stay with the desk's endpoints; mute and hang-up act on the call in this browser too.
   When Twilio cannot be reached the status says so and the rest of the console carries on.

   #softphone[data-state]: loading | token | device | ready | failed | unsupported | ringing | in_call;
   data-device="constructed" once a Twilio.Device exists, data-identity once a token came (tests read them). */
(function () {
  "use strict";
  const sp = { device: null, call: null, callFor: null, expecting: new Set(), cfg: null, S: null, timer: null };

  function node() { return document.getElementById("softphone"); }

  function show(state, text, isError) {
    const n = node();
    if (!n) return;
    n.dataset.state = state;
    const label = n.querySelector(".softphone-status");
    label.textContent = text;
    n.classList.toggle("error", !!isError);
  }

  function fetchToken() {
    return fetch(sp.cfg.token_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then((data) => {
        node().dataset.identity = data.identity;
        return data.token;
      });
  }

  function failed(reason) {
    clearTimeout(sp.timer);
    if (node().dataset.state === "ready" || node().dataset.state === "in_call") return;
    show("failed", sp.S.softphone_failed, true);
    node().dataset.reason = reason || "";
  }

  function start(cfg, S) {
    sp.cfg = cfg;
    sp.S = S;
    show("loading", S.softphone_connecting);
    if (!window.Twilio || !window.Twilio.Device) { failed("sdk_missing"); return; }
    if (!window.Twilio.Device.isSupported) { show("unsupported", S.softphone_unsupported, true); return; }
    fetchToken().then((token) => {
      show("token", S.softphone_connecting);
      try {
        sp.device = new window.Twilio.Device(token, { logLevel: "error", closeProtection: true,
                                                      codecPreferences: ["opus", "pcmu"] });
      } catch (err) {
        failed("device: " + (err && err.message)); return;
      }
      node().dataset.device = "constructed";
      show("device", S.softphone_connecting);
      wire(sp.device);
      sp.timer = setTimeout(() => failed("timeout"), (cfg.register_timeout_s || 20) * 1000);
      sp.device.register().catch((err) => failed("register: " + (err && (err.code || err.message))));
    }).catch((err) => failed("token: " + (err && err.message)));
  }

  function wire(device) {
    device.on("registered", () => { clearTimeout(sp.timer); show("ready", sp.S.softphone_ready); });
    device.on("unregistered", () => { if (!sp.call) show("device", sp.S.softphone_connecting); });
    device.on("error", (err) => {
      if (err && err.code === 20104) { // the token expired before it was renewed: fetch a fresh one
        fetchToken().then((token) => device.updateToken(token)).catch(() => failed("token_refresh"));
        return;
      }
      if (!sp.call) failed("error: " + (err && (err.code || err.message)));
    });
    device.on("tokenWillExpire", () => {
      fetchToken().then((token) => device.updateToken(token)).catch(() => failed("token_refresh"));
    });
    device.on("incoming", incoming);
  }

  function incoming(call) {
    if (sp.call) { call.reject(); return; } // one call at a time; the desk offers the next one again
    // The desk may tag the call with its contact (<Parameter name="interaction_id">); else the oldest
    // voice contact the agent accepted and whose call has not come yet.
    const params = call.customParameters;
    const tagged = params && typeof params.get === "function" ? Number(params.get("interaction_id")) || null : null;
    const expected = tagged !== null ? (sp.expecting.has(tagged) ? tagged : undefined) : [...sp.expecting][0];
    sp.call = call;
    call.on("disconnect", ended);
    call.on("cancel", ended);
    call.on("reject", ended);
    call.on("accept", () => { show("in_call", sp.S.softphone_in_call); hideRinging(); });
    if (expected !== undefined) { answer(expected); return; }
    ringing(call);
  }

  function answer(interactionId) {
    if (!sp.call) return;
    sp.callFor = interactionId === undefined ? null : interactionId;
    if (interactionId !== undefined) sp.expecting.delete(interactionId);
    sp.call.accept();
  }

  function ringing(call) {
    show("ringing", sp.S.softphone_incoming);
    const n = node();
    const box = n.querySelector(".softphone-ringing");
    box.hidden = false;
    box.querySelector(".softphone-from").textContent = (call.parameters && call.parameters.From) || "";
  }

  function hideRinging() { const box = node().querySelector(".softphone-ringing"); if (box) box.hidden = true; }

  function ended() {
    sp.call = null;
    sp.callFor = null;
    hideRinging();
    show(sp.device && sp.device.state === "registered" ? "ready" : "device",
         sp.device && sp.device.state === "registered" ? sp.S.softphone_ready : sp.S.softphone_connecting);
  }

  /* The agent accepted (or holds) voice contact ``id``: its call may ring here now. */
  function expect(id) { sp.expecting.add(id); }
  function forget(id) { sp.expecting.delete(id); if (sp.callFor === id && sp.call) sp.call.disconnect(); }

  function mute(id, on) { if (sp.call && (sp.callFor === null || sp.callFor === id)) sp.call.mute(!!on); }
  function hangup(id) { if (sp.call && (sp.callFor === null || sp.callFor === id)) sp.call.disconnect(); }

  function bindButtons() {
    const n = node();
    if (!n) return;
    n.querySelector(".softphone-answer").addEventListener("click", () => answer(undefined));
    n.querySelector(".softphone-decline").addEventListener("click", () => { if (sp.call) sp.call.reject(); });
  }

  bindButtons();
  window.DeskSoftphone = { start: start, expect: expect, forget: forget, mute: mute, hangup: hangup,
                           active: () => !!sp.call };
})();
