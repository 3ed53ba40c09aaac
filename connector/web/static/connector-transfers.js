/* Live progress on the transfer pages: polls /admin/transfers/progress and updates the numbers
   and <progress> elements the page already shows (the page works without this script: the
   numbers are those of its loading, and a refresh link is on the page). The status line
   (role=status, aria-live=polite) speaks only when something ends, not on every number. */
(function () {
  "use strict";
  var live = document.getElementById("live-status");
  if (!live || !window.fetch) { return; }
  var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var every = reduced ? 5000 : 1500;
  var lang = live.getAttribute("data-lang") || "ja";
  var states = {};
  var timer = null;
  var failures = 0;
  var message = "";
  var detail = "";

  function number(n) { return Math.round(n).toLocaleString(lang); }
  function mb(n) {
    return (n / 1e6).toLocaleString(lang, {minimumFractionDigits: 1, maximumFractionDigits: 1});
  }
  function jst(iso) {     // as the pages' jst filter writes it: 2026-12-03 21:17 JST
    var d = new Date(iso);
    if (isNaN(d)) { return iso; }
    return d.toLocaleString("sv-SE", {timeZone: "Asia/Tokyo"}).slice(0, 16) + " JST";
  }
  function say(key) { live.textContent = live.getAttribute("data-msg-" + key) || ""; }

  function set(root, field, text) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el && el.textContent !== text) {
      el.textContent = text;
      if (!reduced) {
        el.classList.remove("updated");
        void el.offsetWidth;           // restart the highlight
        el.classList.add("updated");
      }
    }
  }

  function setStatus(root, state) {
    var badge = root.querySelector('[data-field="status"]');
    if (!badge) { return; }
    var label = live.getAttribute("data-status-" + state);
    if (label) { badge.textContent = label; }
    badge.className = "badge " + ({done: "ok", failed: "danger", cancelled: "warn"}[state] || "info");
  }

  function updateJob(job) {
    var roots = document.querySelectorAll('[data-job="' + job.job + '"]');
    roots.forEach(function (root) {
      set(root, "records", number(job.records));
      set(root, "written", number(job.written));
      set(root, "mb", mb(job.bytes));
      set(root, "rate", number(job.rate_records));
      set(root, "batches", number(job.batches));
      if (job.dataset_id) { set(root, "dataset_id", job.dataset_id); }
      if (job.transfer_id) { set(root, "transfer_id", job.transfer_id); }
      if (job.ended_at) { set(root, "ended_at", jst(job.ended_at)); }
      if (job.phase) { set(root, "phase", live.getAttribute("data-phase-" + job.phase) || job.phase); }
      if (job.sink) {
        set(root, "loaded", number(job.loaded));
        if (job.load_total) { set(root, "load_total", number(job.load_total)); }
      }
      setStatus(root, job.state);
      var bar = root.querySelector('[data-field="progress"]');
      if (bar && job.phase === "loading" && job.load_total) { bar.value = job.loaded / job.load_total; }
      if (bar && job.state === "done") { bar.value = 1; }
      if (bar && (job.state === "failed" || job.state === "cancelled")) { bar.value = 0; }
    });
    var before = states[job.job];
    states[job.job] = job.state;
    if (roots.length && before && before !== job.state) {
      if (job.state === "done") { message = "done"; }
      else if (job.state === "failed" || job.state === "cancelled") {
        message = "failed";
        if (job.error) { detail = lang === "ja" ? job.error.message_ja : job.error.message; }
      }
    }
  }

  function updateRunning(rows) {
    var seen = {};
    rows.forEach(function (row) {
      seen[row.id] = true;
      var tr = document.querySelector('tr[data-transfer="' + row.id + '"]');
      if (!tr) { return; }
      set(tr, "records", number(row.records));
      set(tr, "mb", mb(row.bytes));
      set(tr, "rate", number(row.rate_records));
    });
    var shown = document.querySelectorAll("tr[data-transfer]");
    var changed = rows.some(function (r) {
      return !document.querySelector('tr[data-transfer="' + r.id + '"]');
    });
    shown.forEach(function (tr) { if (!seen[tr.getAttribute("data-transfer")]) { changed = true; } });
    if (changed && !message && document.getElementById("running")) { message = "changed"; }
  }

  function poll() {
    timer = null;
    fetch(live.getAttribute("data-url"), {headers: {"Accept": "application/json"},
                                          credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        failures = 0;
        message = "";
        detail = "";
        data.fetches.forEach(updateJob);
        updateRunning(data.running);
        if (message) { say(message); }
        if (detail) { live.textContent += " " + detail; }
        var busy = data.running.length > 0 || data.fetches.some(function (j) {
          return j.state === "running" || j.state === "starting";
        });
        if (busy || !document.hidden) { schedule(busy ? every : every * 4); }
      })
      .catch(function () {
        failures += 1;
        say("error");
        if (failures < 5) { schedule(every * 4); }
      });
  }

  function schedule(ms) { if (!timer) { timer = window.setTimeout(poll, ms); } }

  document.querySelectorAll("[data-job]").forEach(function (el) {
    states[el.getAttribute("data-job")] = el.getAttribute("data-state");
  });
  poll();
})();
