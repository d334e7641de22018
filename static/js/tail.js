// Live pub/sub tail over Server-Sent Events (EventSource, same origin).
// No inline script and no eval (the CSP forbids both): payloads only ever go into
// textContent, and JSON is pretty-printed with JSON.parse + JSON.stringify.
// The browser keeps at most data-max-rows rows; while paused it holds at most as
// many messages and counts the rest as dropped in the browser.
(function () {
  "use strict";

  function pretty(text) {
    var t = text.trim();
    if (t.charAt(0) === "{" || t.charAt(0) === "[") {
      try {
        return JSON.stringify(JSON.parse(t), null, 2);
      } catch (e) {
        return text;
      }
    }
    return text;
  }

  function clock(seconds) {
    var d = new Date(seconds * 1000);
    return d.toISOString().slice(11, 23);
  }

  function start(panel) {
    var maxRows = parseInt(panel.getAttribute("data-max-rows") || "500", 10);
    var rows = panel.querySelector("#tail-rows");
    var status = panel.querySelector("#tail-status");
    var note = panel.querySelector("#tail-message");
    var pauseButton = panel.querySelector("#tail-pause");
    var filterInput = panel.querySelector("#tail-filter");
    var searchText = new WeakMap();
    var held = [];
    var paused = false;
    var filter = "";
    var droppedBrowser = 0;
    var closedByUs = false;
    var source = null;

    function set(id, value) {
      var el = panel.querySelector("#" + id);
      if (el) {
        el.textContent = String(value);
      }
    }

    function setStatus(text, kind) {
      status.textContent = text;
      status.className = "badge " + kind;
    }

    function say(text) {
      note.textContent = text;
    }

    function matches(row) {
      return !filter || searchText.get(row).indexOf(filter) !== -1;
    }

    function countRows() {
      var shown = rows.childElementCount;
      var matching = 0;
      for (var i = 0; i < rows.children.length; i++) {
        if (!rows.children[i].hidden) {
          matching++;
        }
      }
      set("tail-shown", shown);
      set("tail-matching", matching);
      set("tail-held", held.length);
      set("tail-dropped-browser", droppedBrowser);
    }

    function row(m) {
      var item = document.createElement("div");
      item.className = "tail-row";
      var meta = document.createElement("div");
      meta.className = "tail-meta";
      var when = document.createElement("time");
      when.textContent = clock(m.at);
      var channel = document.createElement("span");
      channel.className = "key tail-channel";
      channel.textContent = m.channel;
      meta.appendChild(when);
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(channel);
      if (m.pattern) {
        var via = document.createElement("span");
        via.className = "muted";
        via.textContent = " via " + m.pattern;
        meta.appendChild(via);
      }
      if (m.binary) {
        var bin = document.createElement("span");
        bin.className = "badge warn";
        bin.textContent = "not UTF-8";
        meta.appendChild(document.createTextNode(" "));
        meta.appendChild(bin);
      }
      if (m.truncated) {
        var cut = document.createElement("span");
        cut.className = "badge warn";
        cut.textContent = "cut: " + m.length + " bytes";
        meta.appendChild(document.createTextNode(" "));
        meta.appendChild(cut);
      }
      var body = document.createElement("pre");
      body.className = "value tail-payload";
      body.textContent = m.truncated ? m.text : pretty(m.text);
      item.appendChild(meta);
      item.appendChild(body);
      searchText.set(item, (m.channel + "\n" + m.text).toLowerCase());
      item.hidden = !matches(item);
      return item;
    }

    function show(messages) {
      if (messages.length > maxRows) {
        droppedBrowser += messages.length - maxRows;
        messages = messages.slice(messages.length - maxRows);
      }
      var batch = document.createDocumentFragment();
      for (var i = messages.length - 1; i >= 0; i--) {
        batch.appendChild(row(messages[i]));
      }
      rows.insertBefore(batch, rows.firstChild);
      while (rows.childElementCount > maxRows) {
        rows.removeChild(rows.lastElementChild);
      }
      countRows();
    }

    function onMessages(event) {
      var data = JSON.parse(event.data);
      if (paused) {
        held = held.concat(data.messages);
        if (held.length > maxRows) {
          droppedBrowser += held.length - maxRows;
          held = held.slice(held.length - maxRows);
        }
        countRows();
      } else {
        show(data.messages);
      }
      set("tail-dropped", data.dropped);
    }

    function onStats(event) {
      var s = JSON.parse(event.data);
      set("tail-rate", s.rate);
      set("tail-received", s.received);
      set("tail-dropped", s.dropped);
      if (s.subscribed) {
        setStatus(paused ? "paused" : "live", paused ? "warn" : "ok");
      } else {
        setStatus("subscribing", "info");
      }
      if (s.last_error && !s.subscribed) {
        say("Redis connection: " + s.last_error + " (reconnecting)");
      } else if (s.disconnects) {
        say("Redis dropped this subscription " + s.disconnects + " time(s) (" + s.last_error +
            "); it was resubscribed, but what was published meanwhile is lost.");
      }
    }

    function finish(event, label) {
      closedByUs = true;
      source.close();
      var reason = "";
      try {
        reason = JSON.parse(event.data).reason || "";
      } catch (e) {
        reason = "";
      }
      setStatus(label, "bad");
      say("The tail ended: " + reason + ". Reload the page to start it again.");
    }

    function explainFailure() {
      fetch(panel.getAttribute("data-tails"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.active >= s.max_tails) {
            setStatus("refused", "bad");
            say(s.active + " live tails are open, the most this dashboard allows (max_tails=" +
                s.max_tails + "): close one in another tab, or raise --max-tails.");
          } else {
            setStatus("failed", "bad");
            say("The live stream was refused or failed. Reload the page to try again.");
          }
        })
        .catch(function () {
          setStatus("offline", "bad");
          say("The dashboard cannot be reached. Reload the page to try again.");
        });
    }

    function connect() {
      source = new EventSource(panel.getAttribute("data-src"));
      source.addEventListener("hello", function () { setStatus("subscribing", "info"); });
      source.addEventListener("messages", onMessages);
      source.addEventListener("stats", onStats);
      source.addEventListener("end", function (e) { finish(e, "ended"); });
      source.addEventListener("failed", function (e) { finish(e, "failed"); });
      source.onerror = function () {
        if (closedByUs) {
          return;
        }
        if (source.readyState === EventSource.CLOSED) {
          explainFailure();
        } else {
          setStatus("reconnecting", "warn");
        }
      };
    }

    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      if (paused) {
        setStatus("paused", "warn");
      } else {
        var pending = held;
        held = [];
        show(pending);
        setStatus("live", "ok");
      }
      countRows();
    });
    panel.querySelector("#tail-clear").addEventListener("click", function () {
      while (rows.firstChild) {
        rows.removeChild(rows.firstChild);
      }
      countRows();
    });
    filterInput.addEventListener("input", function () {
      filter = filterInput.value.toLowerCase();
      for (var i = 0; i < rows.children.length; i++) {
        rows.children[i].hidden = !matches(rows.children[i]);
      }
      countRows();
    });
    window.addEventListener("pagehide", function () {
      closedByUs = true;
      source.close();
    });
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("tail");
    if (panel && panel.getAttribute("data-src") && !panel.hasAttribute("data-refused")) {
      start(panel);
    }
  });
})();
