/* The inbox list: live refresh from the event stream, counts per view, j/k/Enter navigation. */
(function () {
  "use strict";
  var table = document.getElementById("ticket-list");
  if (!table) return;
  var rowsUrl = table.getAttribute("data-live-rows");
  var countsUrl = table.getAttribute("data-counts");
  var firstPage = table.getAttribute("data-first-page") === "true";
  var selected = -1;

  function rows() { return Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-number]")); }
  function select(i) {
    var all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(all.length - 1, i));
    all.forEach(function (r, j) { r.classList.toggle("selected", j === selected); });
    var link = all[selected].querySelector("a");
    if (link) link.focus();
  }

  document.addEventListener("inbox:key", function (ev) {
    var key = ev.detail.key;
    if (key === "j") { ev.detail.original.preventDefault(); select(selected + 1); }
    else if (key === "k") { ev.detail.original.preventDefault(); select(selected - 1); }
    else if (key === "Enter" && selected >= 0) {
      var link = rows()[selected].querySelector("a");
      if (link) window.location.href = link.href;
    }
  });

  function loadCounts() {
    fetch(countsUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (counts) {
        if (!counts) return;
        Object.keys(counts).forEach(function (id) {
          var els = document.querySelectorAll('[data-count="' + CSS.escape(id) + '"]');
          Array.prototype.forEach.call(els, function (el) {
            el.textContent = id === "current" ? "(" + counts[id] + ")" : String(counts[id]);
          });
        });
      })
      .catch(function () {});
  }

  var refreshTimer = null;
  function refreshRows(announceNumber) {
    if (!firstPage) return;
    if (refreshTimer) window.clearTimeout(refreshTimer);
    refreshTimer = window.setTimeout(function () {
      var known = {};
      rows().forEach(function (r) { known[r.getAttribute("data-number")] = r.textContent; });
      fetch(rowsUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var tbody = tpl.content.querySelector("tbody");
          var current = table.querySelector("tbody");
          if (!tbody || !current) return;
          var fresh = 0;
          Array.prototype.forEach.call(tbody.querySelectorAll("tr[data-number]"), function (r) {
            var n = r.getAttribute("data-number");
            if (!(n in known) || known[n] !== r.textContent) { r.classList.add("fresh"); fresh++; }
          });
          current.replaceWith(tbody);
          selected = -1;
          if (announceNumber) window.inbox.announce("Nuevo ticket #" + announceNumber);
          else if (fresh) window.inbox.announce("La lista se actualizó");
        });
      loadCounts();
    }, 250);
  }

  loadCounts();
  if (window.EventSource) {
    var source = new EventSource("/live");
    source.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "reload") { source.close(); window.location.reload(); return; }
      if (data.type !== "event") return;
      if (/^(ticket\.|message\.|reply\.|contact\.)/.test(data.kind)) {
        refreshRows(data.kind === "ticket.created" ? data.number : null);
      }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }
})();
