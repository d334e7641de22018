// "Copy as redis-cli" and other copy buttons: <button data-copy="#input-id">. No inline
// script (the CSP forbids it): one delegated listener. Falls back to selecting the text
// where the Clipboard API is unavailable (plain http off localhost).
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    function done(label) {
      var old = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", old);
      button.textContent = label;
      setTimeout(function () { button.textContent = old; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done("Copied"); },
        function () { source.select && source.select(); done("Press Ctrl+C"); });
    } else {
      if (source.select) { source.select(); }
      done("Press Ctrl+C");
    }
  });
})();
