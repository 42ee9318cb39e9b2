/* Shared behaviour of the agents' pages: keyboard shortcuts, the help dialog, the CSRF header for fetch, and the
   live-region announcer. No inline scripts anywhere (the Content-Security-Policy forbids them). */
(function () {
  "use strict";
  var body = document.body;
  window.inbox = window.inbox || {};
  window.inbox.csrf = body.getAttribute("data-csrf") || "";

  window.inbox.announce = function (text) {
    var region = document.getElementById("live-status");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  };

  window.inbox.post = function (url, data) {
    var body = new URLSearchParams(data || {});
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": window.inbox.csrf, "X-Requested-With": "fetch" }
    });
  };

  function typingTarget(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  var help = document.getElementById("shortcuts-help");
  var helpButton = document.getElementById("shortcuts-help-open");
  function openHelp() { if (help && !help.open) help.showModal(); }
  if (helpButton) helpButton.addEventListener("click", openHelp);

  var pendingG = false;
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && typingTarget(ev.target) && ev.target.form) {
      ev.preventDefault();
      if (ev.target.form.requestSubmit) ev.target.form.requestSubmit(); else ev.target.form.submit();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typingTarget(ev.target)) return;
    if (help && help.open) return;
    var key = ev.key;
    if (pendingG) {
      pendingG = false;
      if (key === "i") { ev.preventDefault(); window.location.href = "/inbox"; }
      return;
    }
    if (key === "g") { pendingG = true; window.setTimeout(function () { pendingG = false; }, 1200); return; }
    if (key === "?") { ev.preventDefault(); openHelp(); return; }
    var focusEl = document.querySelector('[data-shortcut-focus="' + (key === "/" ? "/" : key) + '"]');
    if (focusEl) { ev.preventDefault(); focusEl.focus(); focusEl.scrollIntoView({ block: "center" }); return; }
    var clickEl = document.querySelector('[data-shortcut-click="' + key + '"]');
    if (clickEl && !clickEl.disabled) { ev.preventDefault(); clickEl.click(); return; }
    document.dispatchEvent(new CustomEvent("inbox:key", { detail: { key: key, original: ev } }));
  });
})();
