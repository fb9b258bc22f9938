/* The chat widget loader: one script tag on any allowed site.
 *   <script src="https://desk.example.com/chat/widget.js" async></script>
 * It adds an iframe served by the desk (so the conversation, its socket and its storage stay on the
 * desk's origin); the desk refuses to be framed by origins not listed in chat.allowed_origins. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__deskChat) { return; }
  window.__deskChat = true;
  var desk = new URL(script.src).origin;
  var lang = script.getAttribute("data-lang") || (document.documentElement.lang || "en").slice(0, 2);
  var frame = document.createElement("iframe");
  frame.src = desk + "/chat/frame?origin=" + encodeURIComponent(window.location.origin) + "&lang=" + encodeURIComponent(lang);
  frame.id = "desk-chat-frame";
  frame.title = "chat";
  frame.setAttribute("allow", "clipboard-write");
  var closed = "position:fixed;right:16px;bottom:16px;width:200px;height:64px;border:0;z-index:2147483000;background:transparent;";
  var open = "position:fixed;right:16px;bottom:16px;width:380px;height:560px;max-width:calc(100vw - 32px);max-height:calc(100vh - 32px);border:0;z-index:2147483000;box-shadow:0 4px 24px rgba(0,0,0,.25);border-radius:10px;background:#fff;";
  frame.style.cssText = closed;
  window.addEventListener("message", function (event) {
    if (event.origin !== desk || event.source !== frame.contentWindow || !event.data || event.data.type !== "desk-chat") { return; }
    frame.style.cssText = event.data.open ? open : closed;
  });
  (document.body || document.documentElement).appendChild(frame);
})();
