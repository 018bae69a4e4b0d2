// The console's progressive script: the pages work without it (forms post, links link);
// with it, SLA countdowns tick, the queue and the incident update live from the server's
// event stream (/console/events), and keys work (j/k, Enter, a, e, n, r, ?).
"use strict";
(function () {
  var live = document.body.dataset.live || "";

  function duration(seconds) {
    var s = Math.abs(seconds), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24,
      m = Math.floor(s / 60) % 60, r = s % 60, two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + two(m) + "m";
    return m + "m " + two(r) + "s";
  }

  // Countdowns: from the seconds the server computed, by the time since this page got them
  // (the browser's clock may disagree with the server's).
  function arm(root) {
    var now = performance.now();
    root.querySelectorAll(".clock[data-seconds]").forEach(function (el) { el.dataset.base = now; });
  }
  function tick() {
    var now = performance.now();
    document.querySelectorAll(".clock[data-seconds]").forEach(function (el) {
      var left = Math.floor(Number(el.dataset.seconds) - (now - Number(el.dataset.base)) / 1000);
      var text = el.querySelector(".clock-text");
      if (left >= 0) {
        text.textContent = duration(left) + " left";
      } else {
        text.textContent = "overdue " + duration(left);
        el.classList.remove("clock-ok", "clock-warn");
        el.classList.add("clock-breach");
      }
    });
  }
  arm(document);
  setInterval(tick, 1000);

  // Queue selection (j/k).
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue-rows tr.row")); }
  var selected = null;
  function select(id) {
    selected = id;
    rows().forEach(function (row) {
      var on = row.dataset.id === id;
      row.classList.toggle("selected", on);
      if (on) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    });
  }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var at = all.findIndex(function (row) { return row.dataset.id === selected; });
    at = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    select(all[at].dataset.id);
    var link = all[at].querySelector("a.open");
    if (link) link.focus();
  }
  function selectedRow() { return rows().find(function (row) { return row.dataset.id === selected; }); }

  // Live updates: the ids that changed come on the stream; what the page shows of them is
  // fetched again and swapped in.
  var status = document.getElementById("live-status");
  var pending = false, fetching = false;
  function refresh() {
    if (fetching) { pending = true; return; }
    fetching = true; pending = false;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401) { location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) swap(new DOMParser().parseFromString(html, "text/html")); })
      .catch(function () {})
      .then(function () { fetching = false; if (pending) refresh(); });
  }
  function busy(section) {
    if (!section) return false;
    if (section.contains(document.activeElement) && document.activeElement !== section) return true;
    return Array.prototype.some.call(section.querySelectorAll("input:not([type=hidden]):not([type=checkbox]),textarea"),
      function (field) { return field.value !== ""; });
  }
  function replace(id, fresh) {
    var old = document.getElementById(id), next = fresh.getElementById(id);
    if (old && next) { old.replaceWith(next); arm(next); return next; }
    return null;
  }
  function swap(fresh) {
    if (live === "queue") {
      var checked = Array.prototype.map.call(document.querySelectorAll("#queue-rows input[name=ids]:checked"),
        function (box) { return box.value; });
      var focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("#queue tr.row") : null;
      if (replace("queue", fresh)) {
        checked.forEach(function (id) {
          var box = document.getElementById("pick-" + id);
          if (box) box.checked = true;
        });
        if (selected) select(selected);
        if (focused) {
          var row = selectedRow();
          var link = row && row.querySelector("a.open");
          if (link) link.focus();
        }
      }
    } else if (live === "incident") {
      replace("live", fresh);
      if (!busy(document.getElementById("actions"))) replace("actions", fresh);
    }
  }
  if (live && window.EventSource) {
    var source = new EventSource("/console/events");
    var me = (document.querySelector("[data-incident]") || {}).dataset;
    source.addEventListener("open", function () { if (status) status.textContent = "Live"; });
    source.addEventListener("error", function () {
      if (status) status.textContent = source.readyState === 2 ? "Not live: reload the page" : "Reconnecting…";
    });
    source.addEventListener("signed-out", function () { source.close(); location.reload(); });
    source.addEventListener("incidents", function (event) {
      var ids = event.data.split(" ");
      if (live === "incident" && me && ids.indexOf("all") < 0 && ids.indexOf(me.incident) < 0) return;
      refresh();
    });
  }

  // Keys.
  var help = document.getElementById("help");
  var keys = document.getElementById("keys-button");
  if (keys && help && help.showModal) {
    keys.hidden = false;
    keys.addEventListener("click", function () { help.showModal(); });
  }
  function click(selector) { var el = document.querySelector(selector); if (el) { el.click(); return true; } return false; }
  function focus(selector) { var el = document.querySelector(selector); if (el) { el.focus(); return true; } return false; }
  if (location.hash === "#form-escalate") focus("#escalate-reason");
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    if (help && help.open) return;
    var handled = true;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter": {
        var row = selectedRow();
        if (live === "queue" && row && document.activeElement === document.body) location.href = row.querySelector("a.open").href;
        else handled = false;
        break;
      }
      case "a":
        if (live === "queue") { var r = selectedRow(); handled = !!(r && r.querySelector("button.ack")); if (handled) r.querySelector("button.ack").click(); }
        else handled = click("#form-acknowledge button[type=submit]");
        break;
      case "e":
        if (live === "queue") { var s = selectedRow(); if (s) location.href = s.querySelector("a.open").href + "#form-escalate"; else handled = false; }
        else handled = focus("#escalate-reason");
        break;
      case "n": handled = focus("#note-text"); break;
      case "r": handled = focus("#resolve-resolution"); break;
      case "?": if (help && help.showModal) help.showModal(); else handled = false; break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("#queue-rows tr.row");
    if (row) select(row.dataset.id);
  });
})();
