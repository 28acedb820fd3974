/* Flowrra dashboard pages: dashboard, tasks, task detail, schedules (see flowrra.js for the core).
 *
 * Every task row is <tr data-task-id="…" data-status="…">; a task.update frame replaces the row
 * in place (or inserts it at the top when it belongs to the current view), so pages change
 * live without a reload.
 */
(function (F) {
  "use strict";
  var h = F.h, $ = F.$;
  var FINAL = {success: true, failed: true, cancelled: true};

  function rowFor(tbody, taskId) {
    var rows = tbody.querySelectorAll("tr[data-task-id]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-task-id") === taskId) return rows[i];
    }
    return null;
  }

  function taskLink(task) {
    return h("a", {href: F.url("tasks/" + encodeURIComponent(task.task_id))},
             task.task_name || task.task_id);
  }

  function badges(task) {
    return [F.statusBadge(task.status),
            task.dead_lettered ? [" ", F.statusBadge("dead_lettered", "dead letter")] : null];
  }

  function taskActions(task) {
    if (F.readOnly) return null;
    var id = encodeURIComponent(task.task_id);
    var buttons = [];
    if (task.dead_lettered && task.dead_letter) {
      buttons.push(h("button", {type: "button", className: "small action", dataset: {action: "retry"},
        onclick: function () { F.action("POST", "dead-letters/" + id + "/retry", undefined, "Queued again"); }},
        "Retry"));
      buttons.push(h("button", {type: "button", className: "small danger action", dataset: {action: "purge"},
        onclick: function () { F.action("DELETE", "dead-letters/" + id, undefined, "Dead letter purged"); }},
        "Purge"));
    } else if (task.status === "failed" || task.status === "cancelled") {
      buttons.push(h("button", {type: "button", className: "small action", dataset: {action: "retry"},
        onclick: function () { F.action("POST", "executions/" + id + "/retry", undefined, "Queued again"); }},
        "Retry"));
    } else if (!FINAL[task.status]) {
      buttons.push(h("button", {type: "button", className: "small danger action", dataset: {action: "cancel"},
        onclick: function () { F.action("POST", "executions/" + id + "/cancel", undefined, "Cancelling"); }},
        "Cancel"));
    }
    return h("div", {className: "actions"}, buttons);
  }

  /* One task row. kind: "recent" (dashboard), "history" (tasks page) or "failure". */
  function taskRow(task, kind) {
    var attrs = {dataset: {taskId: task.task_id, status: task.status,
                           deadLettered: task.dead_lettered ? "true" : null}};
    if (kind === "failure") {
      return h("tr", attrs, h("td", null, taskLink(task)),
               h("td", {className: "mono"}, (task.error || "").split("\n")[0]),
               h("td", {className: "optional"}, F.timeCell(task.finished_at)));
    }
    var cells = [h("td", null, taskLink(task)), h("td", null, badges(task)),
                 h("td", {className: "mono optional id"}, task.task_id),
                 h("td", {className: "optional"}, F.timeCell(task.submitted_at))];
    if (kind === "history") cells.push(h("td", {className: "optional"}, F.timeCell(task.finished_at)));
    cells.push(h("td", {className: "num optional"}, F.fmtDuration(F.runtime(task))));
    cells.push(h("td", {className: "num"}, String(task.retries || 0)));
    if (kind === "history") cells.push(h("td", {className: "action"}, taskActions(task)));
    return h("tr", attrs, cells);
  }

  function fillRows(tbody, tasks, kind, empty) {
    F.clear(tbody);
    tasks.forEach(function (t) { tbody.appendChild(taskRow(t, kind)); });
    if (empty) $(empty).hidden = tasks.length > 0;
  }

  /* Replace the task's row in place; or insert it at the top (keeping at most `limit`). */
  function upsert(tbody, task, kind, insert, limit, empty) {
    var existing = rowFor(tbody, task.task_id);
    var row = taskRow(task, kind);
    if (existing) {
      tbody.replaceChild(row, existing);
    } else if (insert) {
      tbody.insertBefore(row, tbody.firstChild);
      while (limit && tbody.rows.length > limit) tbody.deleteRow(tbody.rows.length - 1);
    } else {
      return false;
    }
    row.classList.add("flash");
    if (empty) $(empty).hidden = true;
    return true;
  }

  function scheduleWhen(s) {
    if (s.kind === "cron") return h("span", {className: "mono"}, s.cron + (s.timezone && s.timezone !== "UTC" ? " (" + s.timezone + ")" : ""));
    if (s.kind === "interval") return "every " + F.fmtDuration(s.interval);
    return "once at " + F.fmtTime(s.run_at);
  }

  // -- dashboard -------------------------------------------------------------------------------
  // The chart shows the server's per-bucket counts of the last minute (stats.throughput.buckets),
  // fetched on load, after task events (throttled) and on every poll; between fetches the bars
  // move left as time passes. One source of truth, the same in live and polling mode.
  var BUCKET_MS = 2000;
  var spark = {counts: [], receivedAt: 0};

  function drawSpark() {
    var chart = $("throughput-chart");
    if (!chart) return;
    var shift = Math.floor((Date.now() - spark.receivedAt) / BUCKET_MS);
    var counts = spark.counts.slice(Math.min(shift, spark.counts.length));
    while (counts.length < spark.counts.length) counts.push(0);
    var max = Math.max.apply(null, counts.concat([1]));
    F.clear(chart);
    counts.forEach(function (c) {
      var bar = h("span");
      bar.style.height = Math.round(100 * c / max) + "%";  // CSSOM: allowed by the page's CSP
      chart.appendChild(bar);
    });
  }

  // stats.tasks holds one count per status plus non-status keys (e.g. "registered"): read only statuses.
  var STATUSES = ["pending", "running", "retrying", "success", "failed", "cancelled"];

  function renderStats(stats) {
    STATUSES.forEach(function (status) {
      var el = $("count-" + status);
      if (el && typeof stats.tasks[status] === "number") el.textContent = String(stats.tasks[status]);
    });
    $("count-dead_lettered").textContent = String(stats.dead_letters);
    $("throughput-value").textContent = String(stats.throughput.per_minute);
    if (stats.throughput.buckets) {
      BUCKET_MS = stats.throughput.buckets.seconds * 1000;
      spark = {counts: stats.throughput.buckets.counts, receivedAt: Date.now()};
      drawSpark();
    }
    $("throughput-note").textContent = stats.throughput.succeeded + " succeeded, " +
      stats.throughput.failed + " failed in the last " + stats.throughput.window_seconds + " s.";
  }

  function renderWorkers(workers) {
    var tbody = $("workers-table").tBodies[0];
    F.clear(tbody);
    $("workers-count").textContent = String(workers.length);
    $("workers-empty").hidden = workers.length > 0;
    workers.forEach(function (w) {
      tbody.appendChild(h("tr", {dataset: {workerId: w.id}},
        h("td", {className: "mono"}, String(w.id).slice(0, 16)),
        h("td", {className: "optional"}, (w.hostname || "") + (w.pid ? " · " + w.pid : "")),
        h("td", {className: "num"}, String(w.active === undefined ? "–" : w.active)),
        h("td", {className: "num"}, String(w.processed === undefined ? "–" : w.processed)),
        h("td", {className: "num"}, String(w.failed === undefined ? "–" : w.failed)),
        h("td", {className: "optional"}, (w.queues || []).join(", ")),
        h("td", {className: "optional"}, F.timeCell(w.last_seen))));
    });
  }

  function renderScheduleSummary(result) {
    var box = F.clear($("schedules-summary"));
    if (result.error) {
      box.appendChild(h("p", {className: "notice", id: "no-scheduler"}, result.error));
      return;
    }
    var items = result.items;
    if (!items.length) { box.appendChild(h("p", {className: "empty"}, "No schedules yet.")); return; }
    var tbody = h("tbody");
    items.slice(0, 8).forEach(function (s) {
      tbody.appendChild(h("tr", {dataset: {scheduleId: s.id, enabled: String(s.enabled)}},
        h("td", null, s.task_name), h("td", null, scheduleWhen(s)),
        h("td", null, s.enabled ? F.timeCell(s.next_run_at) : "disabled")));
    });
    box.appendChild(h("div", {className: "table-wrap"}, h("table", null,
      h("thead", null, h("tr", null, h("th", null, "Task"), h("th", null, "When"), h("th", null, "Next run"))),
      tbody)));
  }

  function schedulesOrError() {
    // api/schedules answers a plain list; the pages keep {items} (or {error}) internally.
    return F.api("GET", "schedules").then(function (list) { return {items: list}; }, function (err) {
      if (err.status === 503) return {error: err.message, items: []};
      throw err;
    });
  }

  var refreshStats = F.throttle(function () {
    F.api("GET", "stats").then(renderStats, function () {});
  }, 1500);

  F.pages.dashboard = {
    init: function () { setInterval(drawSpark, BUCKET_MS); drawSpark(); },
    refresh: function () {
      return Promise.all([
        F.api("GET", "stats"), F.api("GET", "executions?limit=15"),
        F.api("GET", "executions?status=failed&limit=8"), F.api("GET", "workers"), schedulesOrError()
      ]).then(function (r) {
        renderStats(r[0]);
        fillRows($("recent-tasks").tBodies[0], r[1].items, "recent", "recent-empty");
        fillRows($("recent-failures").tBodies[0], r[2].items, "failure", "failures-empty");
        renderWorkers(r[3].items);
        renderScheduleSummary(r[4]);
      });
    },
    onTask: function (task) {
      upsert($("recent-tasks").tBodies[0], task, "recent", true, 15, "recent-empty");
      if (task.status === "failed") upsert($("recent-failures").tBodies[0], task, "failure", true, 8, "failures-empty");
      refreshStats();
    }
  };

  // -- tasks -----------------------------------------------------------------------------------
  var view = {status: "", q: "", limit: 50, offset: 0, total: 0};

  function readView() {
    var p = new URLSearchParams(window.location.search);
    view.status = p.get("status") || "";
    view.q = p.get("q") || "";
    view.limit = parseInt(p.get("limit"), 10) || 50;
    view.offset = Math.max(0, parseInt(p.get("offset"), 10) || 0);
    $("status-filter").value = view.status;
    $("task-search").value = view.q;
    $("page-size").value = String(view.limit);
  }

  function writeView() {
    var keep = new URLSearchParams(window.location.search);
    ["status", "q", "limit", "offset"].forEach(function (k) { keep.delete(k); });
    var q = F.query({status: view.status, q: view.q, limit: view.limit === 50 ? "" : view.limit,
                     offset: view.offset || ""}).replace(/^\?/, "");
    var rest = keep.toString();
    var search = [q, rest].filter(Boolean).join("&");
    window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
  }

  function renderRegistered(items) {
    var tbody = F.clear($("registered-tasks").tBodies[0]);
    items.forEach(function (t) {
      tbody.appendChild(h("tr", {dataset: {taskName: t.name}},
        h("td", {className: "mono"}, t.name), h("td", null, t.cpu_bound ? "CPU" : "I/O"),
        h("td", {className: "optional"}, t.queue), h("td", {className: "num"}, String(t.max_retries)),
        h("td", {className: "num optional"}, t.timeout ? t.timeout + " s" : "–"),
        h("td", {className: "mono optional"}, t.signature || "")));
    });
  }

  function renderPage(page) {
    view.total = page.total;
    fillRows($("tasks-table").tBodies[0], page.items, "history", "tasks-empty");
    var first = page.items.length ? view.offset + 1 : 0;
    $("page-info").textContent = first + "–" + (view.offset + page.items.length) + " of " + page.total;
    $("page-prev").disabled = view.offset === 0;
    $("page-next").disabled = view.offset + page.items.length >= page.total;
    $("purge-dead").hidden = F.readOnly || view.status !== "dead_lettered" || page.total === 0;
  }

  function matchesView(task) {
    if (view.offset !== 0 || view.q) return false;
    return !view.status || view.status === task.status;
  }

  F.pages.tasks = {
    init: function () {
      readView();
      $("task-filter").addEventListener("submit", function (e) {
        e.preventDefault();
        view.status = $("status-filter").value;
        view.q = $("task-search").value.trim();
        view.limit = parseInt($("page-size").value, 10) || 50;
        view.offset = 0;
        writeView();
        F.refresh();
      });
      $("status-filter").addEventListener("change", function () { $("task-filter").requestSubmit(); });
      $("page-prev").addEventListener("click", function () {
        view.offset = Math.max(0, view.offset - view.limit); writeView(); F.refresh();
      });
      $("page-next").addEventListener("click", function () {
        view.offset += view.limit; writeView(); F.refresh();
      });
      $("purge-dead").addEventListener("click", function () {
        if (window.confirm("Delete every dead letter? This cannot be undone.")) {
          F.action("DELETE", "dead-letters", undefined, function (d) { return d.purged + " dead letters purged"; });
        }
      });
    },
    refresh: function () {
      var q = F.query({status: view.status, q: view.q, limit: view.limit, offset: view.offset});
      return Promise.all([F.api("GET", "executions" + q), F.api("GET", "tasks")]).then(function (r) {
        renderPage(r[0]);
        renderRegistered(r[1]);
      });
    },
    onTask: function (task) {
      if (view.status === "dead_lettered") return;
      var inserted = upsert($("tasks-table").tBodies[0], task, "history", matchesView(task), view.limit, "tasks-empty");
      if (inserted && matchesView(task)) refreshTotals();
    }
  };

  var refreshTotals = F.throttle(function () {
    var q = F.query({status: view.status, limit: 1});
    F.api("GET", "executions" + q).then(function (page) {
      view.total = page.total;
      var shown = $("tasks-table").tBodies[0].rows.length;
      $("page-info").textContent = (shown ? view.offset + 1 : 0) + "–" + (view.offset + shown) + " of " + page.total;
      $("page-next").disabled = view.offset + shown >= page.total;
    }, function () {});
  }, 2000);

  // -- task detail -----------------------------------------------------------------------------
  var current = null, liveSteps = [];

  function field(dl, label, value) {
    dl.appendChild(h("dt", null, label));
    dl.appendChild(h("dd", null, value === null || value === undefined || value === "" ? "–" : value));
  }

  function renderTask(task) {
    current = task;
    $("task-missing").hidden = true;
    $("task-title").textContent = task.task_name || "Task";
    document.title = (task.task_name || "Task") + " · " + document.title.split(" · ").pop();
    var badge = $("task-status");
    badge.setAttribute("data-status", task.dead_letter ? "dead_lettered" : task.status);
    badge.textContent = task.dead_letter ? "failed · dead letter" : task.status;
    $("task-detail").setAttribute("data-status", task.status);
    var dl = F.clear($("task-fields"));
    field(dl, "Status", task.status);
    field(dl, "Submitted", F.timeCell(task.submitted_at));
    field(dl, "Started", F.timeCell(task.started_at));
    field(dl, "Finished", F.timeCell(task.finished_at));
    field(dl, "Runtime", F.fmtDuration(F.runtime(task)));
    field(dl, "Retries", String(task.retries || 0));
    if (task.next_retry_at) field(dl, "Next retry", F.timeCell(task.next_retry_at));
    field(dl, "Worker", task.worker);
    field(dl, "Queue", task.queue);
    field(dl, "Priority", String(task.priority === undefined ? 0 : task.priority));
    $("task-args").textContent = "args = " + F.fmtJSON(task.args || []);
    $("task-kwargs").textContent = "kwargs = " + F.fmtJSON(task.kwargs || {});
    $("task-result").textContent = task.status === "success" ? F.fmtJSON(task.result) : "–";
    $("error-panel").hidden = !task.error;
    $("task-error").textContent = task.error || "";
    $("task-traceback").hidden = !task.traceback;
    $("task-traceback").textContent = task.traceback || "";
    renderTimeline(task);
    renderDetailActions(task);
  }

  function renderTimeline(task) {
    var ol = F.clear($("task-timeline"));
    var steps = (task.timeline || []).concat(liveSteps);
    steps.forEach(function (s, i) {
      if (i > 0 && steps[i - 1].status === s.status && !s.at) return;
      ol.appendChild(h("li", {dataset: {status: s.status}}, F.statusBadge(s.status),
        s.at ? F.timeCell(s.at) : null,
        s.attempt ? h("span", {className: "muted"}, "attempt " + s.attempt) : null,
        s.retries ? h("span", {className: "muted"}, s.retries + " retr" + (s.retries === 1 ? "y" : "ies")) : null,
        s.live ? h("span", {className: "muted"}, "(live)") : null));
    });
  }

  function renderDetailActions(task) {
    var id = encodeURIComponent(task.task_id);
    var retry = $("action-retry"), cancel = $("action-cancel"), purge = $("action-purge");
    retry.hidden = F.readOnly || !(task.status === "failed" || task.status === "cancelled");
    cancel.hidden = F.readOnly || !!FINAL[task.status];
    purge.hidden = F.readOnly || !task.dead_letter;
    retry.onclick = function () {
      var path = task.dead_letter ? "dead-letters/" + id + "/retry" : "executions/" + id + "/retry";
      liveSteps = [];
      F.action("POST", path, undefined, "Queued again");
    };
    cancel.onclick = function () { F.action("POST", "executions/" + id + "/cancel", undefined, "Cancelling"); };
    purge.onclick = function () { F.action("DELETE", "dead-letters/" + id, undefined, "Dead letter purged"); };
  }

  var refreshDetail = F.throttle(function () { F.refresh(); }, 800);

  F.pages.task = {
    refresh: function () {
      var id = $("task-detail").getAttribute("data-task-id");
      return F.api("GET", "executions/" + encodeURIComponent(id)).then(function (task) {
        liveSteps = [];
        renderTask(task);
      }, function (err) {
        if (err.status !== 404) throw err;
        $("task-missing").hidden = false;
        $("task-status").setAttribute("data-status", "");
        $("task-status").textContent = "unknown";
      });
    },
    onTask: function (task) {
      if (task.task_id !== $("task-detail").getAttribute("data-task-id")) return;
      var last = liveSteps.length ? liveSteps[liveSteps.length - 1].status
        : current && current.status;
      if (last !== task.status) {
        var at = task.status === "running" ? task.started_at
          : FINAL[task.status] ? task.finished_at : task.status === "pending" ? task.submitted_at : null;
        liveSteps.push({status: task.status, at: at || new Date().toISOString(), live: true});
      }
      var merged = Object.assign({}, current || {}, task, {timeline: current ? current.timeline : []});
      if (current && !task.dead_lettered) merged.dead_letter = null;
      renderTask(merged);
      if (FINAL[task.status]) refreshDetail();
    }
  };

  // -- schedules -------------------------------------------------------------------------------
  function scheduleRow(s) {
    var id = encodeURIComponent(s.id);
    var actions = F.readOnly ? null : h("div", {className: "actions"},
      h("button", {type: "button", className: "small secondary action", dataset: {action: s.enabled ? "disable" : "enable"},
        onclick: function () { F.action("PUT", "schedules/" + id + "/" + (s.enabled ? "disable" : "enable"), undefined,
                                        s.enabled ? "Schedule disabled" : "Schedule enabled"); }},
        s.enabled ? "Disable" : "Enable"),
      h("button", {type: "button", className: "small action", dataset: {action: "run"},
        onclick: function () { F.action("POST", "schedules/" + id + "/run", undefined,
                                        function (d) { return "Submitted task " + d.task_id; }); }}, "Run now"),
      h("button", {type: "button", className: "small danger action", dataset: {action: "delete"},
        onclick: function () {
          if (window.confirm("Delete the schedule of " + s.task_name + "?")) {
            F.action("DELETE", "schedules/" + id, undefined, "Schedule deleted");
          }
        }}, "Delete"));
    return h("tr", {dataset: {scheduleId: s.id, enabled: String(s.enabled)}},
      h("td", {className: "mono"}, s.task_name), h("td", null, scheduleWhen(s)),
      h("td", null, s.enabled ? "yes" : "no"),
      h("td", {className: "optional"}, s.enabled ? F.timeCell(s.next_run_at) : "–"),
      h("td", {className: "optional"}, F.timeCell(s.last_run_at)),
      h("td", {className: "num optional"}, String(s.run_count || 0)),
      h("td", {className: "optional"}, s.description || ""),
      h("td", {className: "action"}, actions));
  }

  function parseJSONField(id, kind, label) {
    var text = $(id).value.trim();
    if (!text) return kind === "list" ? [] : {};
    var value = JSON.parse(text);  // throws SyntaxError with a message
    var ok = kind === "list" ? Array.isArray(value) : value && typeof value === "object" && !Array.isArray(value);
    if (!ok) throw new Error(label + " must be a JSON " + (kind === "list" ? "list, like [1, 2]" : 'object, like {"a": 1}'));
    return value;
  }

  function submitSchedule(e) {
    e.preventDefault();
    var error = $("schedule-error");
    error.textContent = "";
    var kind = $("schedule-kind").value, body;
    try {
      body = {task_name: $("schedule-task").value,
              args: parseJSONField("schedule-args", "list", "Args"),
              kwargs: parseJSONField("schedule-kwargs", "object", "Kwargs"),
              priority: parseInt($("schedule-priority").value || "0", 10),
              enabled: $("schedule-enabled").checked,
              description: $("schedule-description").value.trim() || null};
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    if (kind === "cron") body.cron = $("schedule-cron").value.trim();
    else body.interval = parseFloat($("schedule-interval").value);
    F.api("POST", "schedules/" + kind, body).then(function (d) {
      F.toast("Schedule " + d.schedule_id + " saved");
      F.refresh();
    }, function (err) { error.textContent = err.message; });
  }

  F.pages.schedules = {
    init: function () {
      $("schedule-form").addEventListener("submit", submitSchedule);
      $("schedule-kind").addEventListener("change", function () {
        var cron = $("schedule-kind").value === "cron";
        $("cron-field").hidden = !cron;
        $("interval-field").hidden = cron;
      });
      F.api("GET", "tasks").then(function (d) {
        var select = F.clear($("schedule-task"));
        d.forEach(function (t) { select.appendChild(h("option", {value: t.name}, t.name)); });
      }, function () {});
    },
    refresh: function () {
      return Promise.all([schedulesOrError(), F.api("GET", "scheduler").catch(function () { return null; })])
        .then(function (r) {
          var none = !!r[0].error;
          $("no-scheduler").hidden = !none;
          $("no-scheduler").textContent = r[0].error || "";
          $("schedules-panel").hidden = none;
          $("create-panel").hidden = none || F.readOnly;
          if (none) return;
          var tbody = F.clear($("schedules-table").tBodies[0]);
          r[0].items.forEach(function (s) { tbody.appendChild(scheduleRow(s)); });
          $("schedules-empty").hidden = r[0].items.length > 0;
          var stats = r[1];
          $("scheduler-state").textContent = stats ? (stats.is_running ? "scheduler running" : "scheduler stopped") : "";
        });
    },
    onTask: F.throttle(function () { F.refresh(); }, 3000)
  };

  F.start();
})(window.Flowrra);
