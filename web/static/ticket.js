/* The ticket page: live thread (new messages, delivery states), presence (who is viewing / typing), inserting
   catalogue text into the reply. */
(function () {
  "use strict";
  var page = document.getElementById("ticket");
  if (!page) return;
  var number = page.getAttribute("data-number");
  var me = document.body.getAttribute("data-user");
  var container = document.getElementById("thread-container");
  var presence = document.getElementById("presence");
  var reply = document.getElementById("reply-text");

  function renderPresence(viewers) {
    var others = viewers.filter(function (v) { return v.email !== me; });
    presence.textContent = "";
    if (!others.length) return;
    presence.appendChild(document.createTextNode("También en este ticket:"));
    others.forEach(function (v) {
      var span = document.createElement("span");
      span.className = "viewer" + (v.typing ? " typing" : "");
      span.setAttribute("data-email", v.email);
      span.textContent = v.name + (v.typing ? " (escribiendo una respuesta…)" : " (viendo)");
      presence.appendChild(span);
    });
  }

  var refreshTimer = null;
  function refreshThread() {
    if (refreshTimer) window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(function () {
      fetch(container.getAttribute("data-src"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var before = container.querySelectorAll("li.msg").length;
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var list = tpl.content.querySelector("ol");
          if (!list) return;
          container.replaceChildren(list);
          var after = container.querySelectorAll("li.msg").length;
          if (after > before) window.inbox.announce("Nuevo mensaje en el ticket");
        });
    }, 200);
  }

  if (window.EventSource) {
    var source = new EventSource("/live?ticket=" + encodeURIComponent(number));
    source.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "presence") renderPresence(data.viewers || []);
      else if (data.type === "event" && /^(message\.|reply\.)/.test(data.kind)) refreshThread();
      else if (data.type === "reload") { source.close(); window.location.reload(); }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Typing presence: tell the others while the reply box has fresh input.
  if (reply) {
    var typing = false, idle = null, lastSent = 0;
    function send(state) {
      typing = state; lastSent = Date.now();
      window.inbox.post("/tickets/" + number + "/typing", { typing: state ? "1" : "0" }).catch(function () {});
    }
    reply.addEventListener("input", function () {
      if (!typing || Date.now() - lastSent > 10000) send(true);
      if (idle) window.clearTimeout(idle);
      idle = window.setTimeout(function () { send(false); }, 8000);
    });
    reply.addEventListener("blur", function () { if (typing) { if (idle) window.clearTimeout(idle); send(false); } });
  }

  // Catalogue: insert a field (or the suggested reply) into the composer.
  Array.prototype.forEach.call(document.querySelectorAll("button.insert"), function (button) {
    button.addEventListener("click", function () {
      if (!reply) return;
      var text = button.getAttribute("data-insert");
      var from = button.getAttribute("data-insert-from");
      if (from) text = document.getElementById(from).textContent;
      if (button.getAttribute("data-replace") === "1" || !reply.value) {
        reply.value = text;
      } else {
        var start = reply.selectionStart, end = reply.selectionEnd;
        var glue = start > 0 && reply.value.charAt(start - 1) !== "\n" ? "\n" : "";
        reply.value = reply.value.slice(0, start) + glue + text + reply.value.slice(end);
      }
      reply.dispatchEvent(new Event("input"));
      reply.focus();
      window.inbox.announce("Texto insertado en la respuesta");
    });
  });
})();
