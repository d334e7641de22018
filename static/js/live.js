// Live refresh without inline script or eval (the CSP forbids both).
// Elements with hx-trigger="every Ns" poll; this pauses every poll while the tab is
// hidden, and refreshes once when it becomes visible again.
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
})();
