/* Activity dialog: every dataset's progress. The page waits for changes (POST /api/status/wait, a long
 * poll: the agent answers when the status differs from the version shown, or after 25 s), so an idle
 * window sends one request every 25 s instead of one a second. Cards are built once per dataset and then
 * only updated, so keyboard focus and screen readers are not disturbed. */
"use strict";

(() => {
  const { api, $, el, say, sayError, formatBytes, formatDuration, plural } = TA;
  const list = $("#datasets");
  const notice = $("#notice");
  const cards = new Map(); // dataset id -> {root, refs..., last}
  let paused = false;

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function meter(label) {
    const value = el("span", {});
    const bar = el("progress", { max: 1, value: 0, "aria-label": label });
    return { root: el("div", { className: "meter" }, el("div", { className: "meter-label" }, el("span", {}, label), value), bar),
             value, bar };
  }

  async function action(d, verb, button) {
    await TA.busy(button, async () => {
      try {
        const answer = await api("POST", `/api/datasets/${d.id}/${verb}`, {});
        const done = {
          retry: () => "Retrying " + plural(answer.retried || 0, d.files.failed ? "failed file" : "file") + " of " +
            d.name + (d.files.failed ? "." : " now."),
          stop: () => "Stopped watching " + d.name + "; queued files stay queued.",
          pause: () => "Paused " + d.name + ": the batch in flight finishes, no new one starts. The others go on.",
          resume: () => "Resumed " + d.name + ".",
          "open-folder": () => "Opened " + answer.opened + ".",
          "open-catalogue": () => "Opened " + answer.opened + " in the web browser.",
          cancel: () => "Cancelled " + d.name + ": " + plural(answer.dropped || 0, "file") + " not yet sent left " +
            "the queue. What is already in storage and in the catalogue stays there.",
          finalize: () => "Finishing " + d.name + ": the last files are sent, then the dataset is complete.",
        }[verb]();
        say(notice, "ok", done);
      } catch (exc) {
        sayError(notice, exc);
      }
    });
    refresh();
  }

  function buildCard(d) {
    const title = el("h2", { id: "ds-" + d.id });
    const mode = el("span", { className: "badge" });
    const state = el("span", { className: "badge" });
    const where = el("p", { className: "where muted mono" });
    const files = meter("Files");
    const bytes = meter("Data");
    const rate = el("span", {});
    const eta = el("span", {});
    const counts = el("span", {});
    const retry = el("button", { type: "button", className: "small", hidden: true }, "Retry failed");
    const finalize = el("button", { type: "button", className: "small", hidden: true }, "Finalize");
    const stop = el("button", { type: "button", className: "small danger", hidden: true }, "Stop");
    const recent = el("ul", { className: "recent" });
    const recentBox = el("details", {}, el("summary", {}, "Recent files"), recent);
    const errors = el("ul", { className: "errors" });
    const errorsTitle = el("summary", {});
    const errorsBox = el("details", { open: true, hidden: true }, errorsTitle, errors);
    const hold = el("button", { type: "button", className: "small", hidden: true }, "Pause");
    const folder = el("button", { type: "button", className: "small" }, "Open folder");
    // a link (its address visible, copyable); a click asks the agent to open it in the default browser,
    // since a dialog window is no browser
    const catalogue = el("a", { className: "small catalogue-link", href: "#", hidden: true,
                                target: "_blank", rel: "noopener" }, "Open in catalogue");
    const cancel = el("button", { type: "button", className: "small danger", hidden: true }, "Cancel…");
    const confirmText = el("p", { id: "cancel-text-" + d.id });
    const confirmYes = el("button", { type: "button", className: "small danger" }, "Cancel upload");
    const confirmNo = el("button", { type: "button", className: "small" }, "Keep uploading");
    const confirm = el("div", { className: "confirm", role: "alertdialog", hidden: true,
                                "aria-label": "Cancel " + d.name + "?", "aria-describedby": "cancel-text-" + d.id },
      confirmText, el("div", { className: "buttons" }, confirmNo, confirmYes));
    const actions = el("div", { className: "buttons" }, catalogue, folder, hold, stop, finalize, retry, cancel);
    const root = el("section", { className: "panel dataset", "aria-labelledby": "ds-" + d.id, dataset: { id: d.id } },
      el("div", { className: "dataset-head" }, title, mode, state),
      where, files.root, bytes.root,
      el("div", { className: "stats" }, rate, eta, counts),
      errorsBox, recentBox,
      actions, confirm);
    const card = { root, actions, title, mode, state, where, files, bytes, rate, eta, counts, retry, finalize, stop, recent,
                   recentBox, errors, errorsBox, errorsTitle, catalogue, cancel, confirm, d, last: null };
    retry.addEventListener("click", () => action(card.d, "retry", retry));
    hold.addEventListener("click", () => action(card.d, card.d.held ? "resume" : "pause", hold));
    folder.addEventListener("click", () => action(card.d, "open-folder", folder));
    card.hold = hold;
    finalize.addEventListener("click", () => action(card.d, "finalize", finalize));
    stop.addEventListener("click", () => action(card.d, "stop", stop));
    catalogue.addEventListener("click", (event) => {
      event.preventDefault();
      action(card.d, "open-catalogue", catalogue);
    });
    const closeConfirm = () => {
      confirm.hidden = true;
      cancel.focus();
    };
    cancel.addEventListener("click", () => {
      const what = card.d.syncing ? "Its folder is no longer watched and the files" : "The files";
      setText(confirmText, "Cancel the upload of " + card.d.name + "? " + what + " not yet sent are dropped " +
        "from the queue (files being sent right now finish). What is already in storage and in the catalogue " +
        "stays there. Uploading the same folder again later starts it again.");
      confirm.hidden = false;
      confirmNo.focus();
    });
    confirmNo.addEventListener("click", closeConfirm);
    confirm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {  // closes this question, not the window
        event.preventDefault();
        closeConfirm();
      }
    });
    confirmYes.addEventListener("click", async () => {
      await action(card.d, "cancel", confirmYes);
      confirm.hidden = true;
    });
    return card;
  }

  function stateText(d) {
    const failed = d.files.failed || 0;
    if (d.state === "cancelled") return ["cancelled", "cancelled"];
    if (d.syncing) return ["syncing", "active"];
    if (d.state === "complete") return failed ? ["complete, " + failed + " failed", "failed"] : ["complete", "complete"];
    if (d.state === "active" && d.held) return ["paused", "paused"];
    if (d.state === "active" && agentBlocked) return ["waiting", "paused"]; // a problem or a login holds it
    if (d.state === "active") return d.files_total ? ["uploading", "active"] : ["scanning", "active"];
    return [d.state, d.state];
  }

  function updateCard(card, d) {
    card.d = d;
    const f = d.files;
    const [label, kind] = stateText(d);
    setText(card.title, d.name);
    setText(card.mode, d.mode === "sync" ? "sync" : "batch");
    setText(card.state, label);
    card.state.className = "badge " + kind;
    card.root.dataset.state = label;
    setText(card.where, "→ " + d.storage_path);

    const done = f.registered || 0;
    const cancelled = d.state === "cancelled"; // what was not sent left the queue: no "n of n", never "done"
    card.files.bar.max = Math.max(d.files_total, 1);
    card.files.bar.value = done;
    card.files.bar.classList.toggle("done", !cancelled && d.files_total > 0 && done === d.files_total);
    setText(card.files.value, cancelled ? done + " registered; the rest was cancelled"
      : done + " of " + d.files_total + " registered");
    card.files.bar.hidden = card.bytes.bar.hidden = cancelled; // a full bar would read as complete
    card.bytes.bar.max = Math.max(d.bytes_total, 1);
    card.bytes.bar.value = d.bytes_done;
    card.bytes.bar.classList.toggle("done", !cancelled && d.bytes_total > 0 && d.bytes_done >= d.bytes_total);
    setText(card.bytes.value, cancelled ? formatBytes(d.bytes_done) + " registered"
      : formatBytes(d.bytes_done) + " of " + formatBytes(d.bytes_total));

    const running = d.state === "active";
    setText(card.rate, running ? "Rate: " + (d.rate > 0 ? formatBytes(d.rate) + "/s" : "–") : "");
    setText(card.eta, running ? "Time left: " + formatDuration(d.eta) : "");
    const busy = ["pending", "uploading", "uploaded", "verified"].map((s) => f[s] || 0).reduce((a, b) => a + b, 0);
    const parts = [];
    if (busy && running) parts.push(busy + " in progress");
    if (f.failed) parts.push(f.failed + " failed");
    setText(card.counts, parts.join(" · "));

    card.retry.hidden = !f.failed && !(engineWaits && running && busy);  // Retry now: failed or waiting files
    setText(card.retry, f.failed ? "Retry failed" : "Retry now");
    card.finalize.hidden = !d.syncing;
    card.stop.hidden = !d.syncing;
    card.hold.hidden = !running;
    setText(card.hold, d.held ? "Resume" : "Pause");
    card.cancel.hidden = !running;
    if (!running) card.confirm.hidden = true;
    card.catalogue.hidden = !d.catalogue_page;
    if (d.catalogue_page && card.catalogue.getAttribute("href") !== d.catalogue_page) {
      card.catalogue.href = d.catalogue_page;
      card.catalogue.title = d.catalogue_page;
    }

    const recentKey = JSON.stringify(d.recent);
    if (card.recentKey !== recentKey) {
      card.recentKey = recentKey;
      card.recent.replaceChildren(...d.recent.map((p) => el("li", { className: "mono" }, p)));
      card.recentBox.hidden = !d.recent.length;
    }
    const errorsKey = JSON.stringify(d.errors);
    if (card.errorsKey !== errorsKey) {
      card.errorsKey = errorsKey;
      card.errors.replaceChildren(...d.errors.map((e) => el("li", {},
        el("span", { className: "mono" }, e.path), ": ", el("span", { className: "reason" }, e.reason || "failed"))));
      setText(card.errorsTitle, "Failed files (" + (f.failed || d.errors.length) + ")");
      card.errorsBox.hidden = !d.errors.length;
    }

    if (card.last !== null && card.last !== label) {
      setText($("#announce"), d.name + ": " + label + (d.state === "complete" ?
        ", " + plural(done, "file") + " registered" : ""));
    }
    card.last = label;
  }

  let engineWaits = false; // the agent waits (storage unreachable...): Retry now is offered
  let agentBlocked = false; // nothing moves until someone acts (a problem to fix, a storage login)
  function render(status) {
    const agent = status.agent || {};
    agentBlocked = !!(agent.problem || agent.storage_refused);
    paused = !!agent.paused;
    engineWaits = !!agent.waiting;
    $("#retry-now").hidden = !agent.waiting;
    $("#login").hidden = !(agent.storage_refused || agent.login_needed);
    $("#login").dataset.storage = agent.storage_refused ? "1" : "";
    const badge = $("#agent-state");
    setText(badge, agent.state || "unknown");
    badge.className = "badge " + (agent.state || "");
    const pause = $("#pause");
    pause.hidden = false;
    setText(pause, paused ? "Resume" : "Pause all");
    if (agent.storage_refused) {
      say($("#problem"), "error", "The storage refused the password: uploads wait.",
          "Log in… here or in the tray menu; the waiting uploads go on as soon as the storage takes the password.");
    } else if (agent.problem) say($("#problem"), "error", agent.problem, "Fix it in Settings; uploads go on by themselves.");
    else if ($("#problem").textContent) say($("#problem"), "", "");
    const waiting = agent.waiting ? "Waiting: " + agent.waiting : (paused ? "Paused: no new transfers start until you resume." : "");
    if ($("#waiting").textContent !== waiting) say($("#waiting"), waiting ? "warn" : "", waiting);

    const seen = new Set();
    const activity = status.activity || [];
    activity.forEach((d, index) => {
      seen.add(d.id);
      let card = cards.get(d.id);
      if (!card) {
        card = buildCard(d);
        cards.set(d.id, card);
      }
      updateCard(card, d);
      if (list.children[index] !== card.root) list.insertBefore(card.root, list.children[index] || null);
    });
    for (const [id, card] of cards) {
      if (!seen.has(id)) {
        card.root.remove();
        cards.delete(id);
      }
    }
    $("#empty").hidden = activity.length > 0;
    setText($("#updated"), "Updated " + new Date().toLocaleTimeString());
  }

  let inFlight = false;
  let version = "";
  /** Right after an action: the current status at once (the long poll below goes on by itself). */
  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const status = await api("POST", "/api/status/wait", { since: "", timeout: 0 });
      version = status.version || "";
      render(status);
    } catch (exc) {
      sayError($("#problem"), exc);
    } finally {
      inFlight = false;
    }
  }

  async function follow() {
    for (;;) {
      try {
        const status = await api("POST", "/api/status/wait", { since: version, timeout: 25 });
        version = status.version || "";
        render(status);
      } catch (exc) {
        sayError($("#problem"), exc);
        await new Promise((resolve) => setTimeout(resolve, 2000)); // the agent restarts, or is gone
      }
    }
  }

  $("#pause").addEventListener("click", async (event) => {
    await TA.busy(event.currentTarget, async () => {
      try {
        await api("POST", paused ? "/api/resume" : "/api/pause", {});
        say(notice, "ok", paused ? "Resumed." : "Paused: transfers in flight finish, no new ones start.");
      } catch (exc) {
        sayError(notice, exc);
      }
    });
    refresh();
  });

  $("#retry-now").addEventListener("click", async (event) => {
    await TA.busy(event.currentTarget, async () => {
      try {
        const answer = await api("POST", "/api/retry-now", {});
        say(notice, "ok", "Retrying now (" + plural(answer.retried || 0, "file") + " waited for a retry slot).");
      } catch (exc) {
        sayError(notice, exc);
      }
    });
    refresh();
  });

  $("#login").addEventListener("click", async () => {
    try {
      await api("POST", "/api/show/login", $("#login").dataset.storage ? { account: "storage" } : {});
    } catch (exc) {
      sayError(notice, exc);
    }
  });

  $("#new-dataset").addEventListener("click", async () => {
    try {
      await api("POST", "/api/show/dataset", {});
    } catch (exc) {
      sayError(notice, exc);
    }
  });

  /** Opened from the tray's Cancel… of one dataset: its card, with the question asked as its own
   * Cancel… asks it. Nothing is dropped until the person answers here. */
  async function openedFor() {
    if (!TA.request) return;
    try {
      const req = await api("GET", "/api/requests/" + encodeURIComponent(TA.request));
      if (req.dataset === undefined) return;
      const card = cards.get(Number(req.dataset));
      if (card) card.root.scrollIntoView({ block: "nearest" });
      if (req.ask !== "cancel") return;
      if (card && !card.cancel.hidden) card.cancel.click();
      else say(notice, "warn", (card ? card.d.name : "That upload") + " is no longer under way: there is nothing " +
               "to cancel.", "What it sent stays in storage and in the catalogue.");
    } catch (exc) {
      sayError(notice, exc);
    }
  }

  refresh().then(openedFor);
  follow();
})();
