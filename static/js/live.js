// Live refresh without inline script or eval (the CSP forbids both).
// Elements with hx-trigger="every Ns" poll; this pauses every poll while the tab is
// hidden, and refreshes once when it becomes visible again. It also counts up the
// age of what each page shows ("as of 12:03:04 · 3.0 s ago"): the server says how old
// the data was when it answered (data-age-ms); the browser adds the time since, so a
// wrong clock on either side does not matter.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeRequest", function (event) {
    var trigger = event.detail && event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (document.hidden && (!trigger || trigger.type !== "click")) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) {
      document.querySelectorAll("[data-live]").forEach(function (el) {
        window.htmx.trigger(el, "live-resume");
      });
    }
  });

  var seen = new WeakMap();
  function human(ms) {
    if (ms < 1000) { return Math.round(ms) + " ms"; }
    var s = ms / 1000;
    if (s < 60) { return s.toFixed(1) + " s"; }
    if (s < 3600) { return Math.round(s / 60) + " min"; }
    if (s < 86400) { return (s / 3600).toFixed(1) + " h"; }
    return (s / 86400).toFixed(1) + " d";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".freshness[data-age-ms]").forEach(function (el) {
      var base = parseFloat(el.getAttribute("data-age-ms"));
      var age = el.querySelector(".age");
      if (isNaN(base) || !age) { return; }
      if (!seen.has(el)) { seen.set(el, now); }
      age.textContent = human(base + (now - seen.get(el)));
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
})();
