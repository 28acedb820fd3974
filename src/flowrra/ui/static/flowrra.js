/* Flowrra dashboard core: config, JSON API, live socket with polling fallback, DOM helpers.
 *
 * Plain browser JavaScript, no build step, nothing loaded from elsewhere. Pages register
 * themselves in pages.js as Flowrra.pages[name] = {init, refresh, onTask}, then pages.js
 * calls Flowrra.start(), which boots the one named by <body data-page>.
 *
 * Connection: the socket lives at ws(s)://host<prefix>/ws. While it is down the page polls
 * the JSON API every config.pollInterval ms (15 s) and reconnects with exponential backoff
 * (1 s doubling to 30 s, with jitter). #connection-mode shows "live" or "polling".
 * For tests: ?transport=polling forces polling, ?poll_ms=N changes the poll interval, and
 * window.Flowrra.disconnect() / .reconnect() cut and restore the socket.
 */
(function () {
  "use strict";

  var cfgEl = document.getElementById("flowrra-config");
  var config = JSON.parse(cfgEl.getAttribute("data-config"));
  var prefix = config.prefix || "";
  var params = new URLSearchParams(window.location.search);
  var pollMs = Math.max(500, parseInt(params.get("poll_ms") || config.pollInterval, 10) || 15000);
  var forcePolling = params.get("transport") === "polling";

  // -- DOM helpers -------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  /* h("a", {href: url, class: "x", dataset: {taskId: id}}, "text", childNode) — never innerHTML. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    var key;
    attrs = attrs || {};
    for (key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      var value = attrs[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") {
        for (var d in value) { if (value[d] !== null && value[d] !== undefined) el.dataset[d] = value[d]; }
      } else if (key === "onclick") {
        el.addEventListener("click", value);
      } else if (key === "text") {
        el.textContent = value;
      } else {
        el.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
      }
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function clear(el) { while (el && el.firstChild) el.removeChild(el.firstChild); return el; }

  function url(path) { return prefix + "/" + (path || ""); }

  // -- formatting ------------------------------------------------------------------------------
  function fmtTime(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var today = new Date();
    var sameDay = d.toDateString() === today.toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function timeCell(iso) { return h("time", {datetime: iso || null, title: iso || null}, fmtTime(iso)); }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
    return Math.round(seconds / 60) + " min";
  }

  function fmtJSON(value) {
    if (value === undefined) return "";
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }

  function runtime(task) {
    if (typeof task.runtime === "number") return task.runtime;
    if (task.started_at && task.finished_at) {
      return (new Date(task.finished_at) - new Date(task.started_at)) / 1000;
    }
    return null;
  }

  function statusBadge(status, label) {
    return h("span", {className: "badge", dataset: {status: status}}, label || status.replace("_", " "));
  }

  // -- JSON API --------------------------------------------------------------------------------
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function api(method, path, body) {
    var headers = {"Accept": "application/json"};
    var opts = {method: method, headers: headers, credentials: "same-origin"};
    if (method !== "GET") {
      headers["X-Requested-With"] = "flowrra";
      var csrf = cookie("csrftoken");  // Django's CSRF cookie, when present
      if (csrf) headers["X-CSRFToken"] = csrf;
    }
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url("api/" + path), opts).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          var err = new Error((data && data.error) || ("HTTP " + response.status));
          err.status = response.status;
          err.code = data && data.code;
          throw err;
        }
        return data;
      });
    });
  }

  function query(obj) {
    var q = new URLSearchParams();
    Object.keys(obj).forEach(function (k) {
      if (obj[k] !== "" && obj[k] !== null && obj[k] !== undefined) q.set(k, obj[k]);
    });
    var s = q.toString();
    return s ? "?" + s : "";
  }

  var toastTimer = null;
  function toast(message) {
    var el = $("toast");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, 5000);
  }

  /* Run an action (mutation), tell the user how it went, then refresh the page's data. */
  function action(method, path, body, done) {
    return api(method, path, body).then(function (data) {
      if (done) toast(typeof done === "function" ? done(data) : done);
      refresh();
      return data;
    }, function (err) {
      toast(err.message);
      throw err;
    });
  }

  // -- live connection -------------------------------------------------------------------------
  var conn = {mode: "connecting", socket: null, attempts: 0, pollTimer: null, retryTimer: null,
              stopped: false};

  function setMode(mode) {
    conn.mode = mode;
    var el = $("connection-mode");
    if (el) {
      el.setAttribute("data-mode", mode);
      el.textContent = mode;
      el.title = mode === "live" ? "Updates arrive as they happen"
        : mode === "polling" ? "No live connection: refreshing every " + Math.round(pollMs / 1000) + " s"
        : "Connecting…";
    }
    document.body.setAttribute("data-mode", mode);
  }

  function startPolling() {
    setMode("polling");
    if (conn.pollTimer === null) {
      conn.pollTimer = setInterval(refresh, pollMs);
      refresh();
    }
  }

  function stopPolling() {
    if (conn.pollTimer !== null) clearInterval(conn.pollTimer);
    conn.pollTimer = null;
  }

  function scheduleReconnect() {
    if (conn.stopped || conn.retryTimer !== null) return;
    var base = Math.min(30000, 1000 * Math.pow(2, conn.attempts));
    conn.attempts += 1;
    conn.retryTimer = setTimeout(function () {
      conn.retryTimer = null;
      connect();
    }, base / 2 + Math.random() * base / 2);
  }

  function connect() {
    if (conn.stopped) return;
    if (forcePolling || !("WebSocket" in window)) { startPolling(); return; }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
      ws = new WebSocket(scheme + window.location.host + prefix + "/ws");
    } catch (e) {
      startPolling();
      scheduleReconnect();
      return;
    }
    conn.socket = ws;
    ws.onmessage = function (event) {
      var msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === "hello") {
        conn.attempts = 0;
        stopPolling();
        setMode("live");
        refresh();  // catch up on anything missed while disconnected
      } else if (msg.type === "task.update" && msg.task) {
        onTask(msg.task);
      }
    };
    ws.onclose = function () {
      if (conn.socket === ws) conn.socket = null;
      startPolling();
      scheduleReconnect();
    };
  }

  function disconnect(options) {
    var reconnect = options && options.reconnect;
    conn.stopped = !reconnect;
    if (conn.retryTimer !== null) { clearTimeout(conn.retryTimer); conn.retryTimer = null; }
    if (conn.socket) conn.socket.close();
    else startPolling();
  }

  function reconnect() {
    conn.stopped = false;
    conn.attempts = 0;
    if (!conn.socket) connect();
  }

  // -- page dispatch ---------------------------------------------------------------------------
  var page = null;
  var refreshing = null;
  var refreshAgain = false;

  function refresh() {
    if (!page || !page.refresh) return Promise.resolve();
    if (refreshing) { refreshAgain = true; return refreshing; }
    refreshing = Promise.resolve().then(page.refresh).then(function () {
      var stamp = $("updated-at");
      if (stamp) stamp.textContent = "Updated " + new Date().toLocaleTimeString();
    }, function (err) {
      toast("Could not load data: " + err.message);
    }).then(function () {
      refreshing = null;
      if (refreshAgain) { refreshAgain = false; refresh(); }
    });
    return refreshing;
  }

  function onTask(task) {
    if (page && page.onTask) {
      try { page.onTask(task); } catch (e) { if (window.console) console.error(e); }
    }
  }

  /* Call fn at most once per `ms`, at the end of the window (for refreshes after events). */
  function throttle(fn, ms) {
    var timer = null;
    return function () {
      if (timer !== null) return;
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function boot() {
    var name = document.body.getAttribute("data-page");
    page = Flowrra.pages[name] || null;
    setMode("connecting");
    if (page && page.init) page.init();
    refresh();
    connect();
  }

  var Flowrra = window.Flowrra = {
    config: config, prefix: prefix, readOnly: !!config.readOnly, pollMs: pollMs, pages: {},
    $: $, h: h, clear: clear, url: url, api: api, query: query, action: action, toast: toast,
    fmtTime: fmtTime, timeCell: timeCell, fmtDuration: fmtDuration, fmtJSON: fmtJSON,
    runtime: runtime, statusBadge: statusBadge, throttle: throttle, refresh: refresh,
    disconnect: disconnect, reconnect: reconnect, start: boot,
    get mode() { return conn.mode; }
  };
})();
