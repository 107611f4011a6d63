/* Dataset dialog: define a dataset (paths, proposal, descriptions, patterns, mode), preview, start. */
"use strict";

(() => {
  const { api, $, el, say, sayError, formatBytes, plural } = TA;
  const form = $("#dataset-form");
  const pathList = $("#paths");
  const pathInput = $("#path-input");
  const statusBox = $("#status");
  const errorBox = $("#error");
  const proposalInfo = $("#proposal-info");
  const paths = [];

  // -- paths --------------------------------------------------------------------------------------
  function renderPaths() {
    pathList.replaceChildren(...paths.map((p, i) => el("li", {},
      el("span", {}, p),
      el("button", { type: "button", className: "small", "aria-label": "Remove " + p,
                     onclick: () => removePath(i) }, "Remove"))));
  }

  function basename(p) {
    const parts = p.replace(/[\\/]+$/, "").split(/[\\/]/);
    return parts[parts.length - 1] || "";
  }

  function addPaths(list) {
    let added = 0;
    for (const raw of list) {
      const p = String(raw || "").trim();
      if (p && !paths.includes(p)) {
        paths.push(p);
        added += 1;
      }
    }
    renderPaths();
    const name = $("#dataset-name");
    if (!name.value && paths.length === 1) name.value = basename(paths[0]);
    if (added) say(statusBox, "", "");
    dirty();
    return added;
  }

  function removePath(i) {
    const removed = paths.splice(i, 1);
    renderPaths();
    say(statusBox, "info", "Removed " + removed[0]);
    pathInput.focus();
    dirty();
  }

  function addTyped() {
    const value = pathInput.value.trim();
    if (!value) {
      pathInput.focus();
      return;
    }
    if (!/^(\/|~|[A-Za-z]:[\\/]|\\\\)/.test(value)) {
      say(errorBox, "error", "Give the full path of the folder or file.", "For example /data/2026/run42.");
      pathInput.setAttribute("aria-invalid", "true");
      pathInput.focus();
      return;
    }
    pathInput.removeAttribute("aria-invalid");
    say(errorBox, "", "");
    addPaths([value]);
    pathInput.value = "";
    pathInput.focus();
  }

  $("#add-path").addEventListener("click", addTyped);
  pathInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // Enter here adds the path instead of starting the upload
      addTyped();
    }
  });

  // Dropped folders: the trayagent window (pywebview) hands their full paths to
  // window.trayagentDropped from Python; a plain browser only knows the names.
  const dropzone = $("#dropzone");
  window.trayagentDropped = (list) => {
    const n = addPaths(list || []);
    say(statusBox, "info", n ? "Added " + plural(n, "item") + "." : "Already in the list.");
  };
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
    const full = files.map((f) => f.pywebviewFullPath).filter(Boolean);
    if (full.length) {
      window.trayagentDropped(full);
    } else if (TA.native() && files.length) {
      TA.nativeCall("dropped", files.map((f) => f.name)); // answers through window.trayagentDropped
    } else if (files.length) {
      say(errorBox, "warn", "This browser does not reveal where " + files.map((f) => f.name).join(", ") +
          " lives.", "Type the full path above and press Enter.");
      pathInput.focus();
    }
  });

  // Native pickers, when the page runs in the trayagent window.
  TA.whenNative(() => {
    for (const [id, folders] of [["#browse-folders", true], ["#browse-files", false]]) {
      const button = $(id);
      button.hidden = false;
      button.addEventListener("click", async () => {
        TA.nativeCall("pick", folders); // the choice arrives through window.trayagentDropped
      });
    }
  });

  // -- proposal lookup ----------------------------------------------------------------------------
  function pick(obj, ...keys) {
    for (const k of keys) if (obj && obj[k]) return obj[k];
    return "";
  }

  async function lookup() {
    const id = $("#proposal").value.trim();
    if (!id) {
      say(proposalInfo, "error", "Type a proposal ID first.");
      $("#proposal").focus();
      return;
    }
    say(proposalInfo, "info", "Looking up " + id + "…");
    try {
      const p = await api("GET", "/api/proposals/" + encodeURIComponent(id));
      const title = pick(p, "title", "proposal_title");
      let pi = pick(p, "pi", "pi_name", "principal_investigator");
      if (!pi && (p.pi_firstname || p.pi_lastname)) pi = [p.pi_firstname, p.pi_lastname].filter(Boolean).join(" ");
      const email = pick(p, "pi_email", "email");
      if (!title && !pi) {
        say(proposalInfo, "info", "The catalogue has no details of proposal " + id + ".",
            "Check the ID; it is recorded with the dataset as it is.");
        return;
      }
      const lines = [title ? "“" + title + "”" : "Proposal " + id];
      if (pi) lines.push("PI: " + pi + (email ? " <" + email + ">" : ""));
      say(proposalInfo, "ok", lines.join(" — "));
      const inv = $("#investigation-description");
      if (!inv.value && title) inv.value = title;
    } catch (exc) {
      if (exc instanceof TA.ApiError && exc.status === 404) {
        // The local catalogue (or an older agent) has no proposals to look up: not an error.
        say(proposalInfo, "info", "Proposal lookup needs the SciCat catalogue.",
            "Type the proposal ID; it is recorded with the dataset as it is.");
      } else {
        sayError(proposalInfo, exc);
      }
    }
  }

  $("#lookup").addEventListener("click", lookup);
  $("#proposal").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      lookup();
    }
  });

  // -- request body, preview, start ---------------------------------------------------------------
  function mode() {
    return form.querySelector("input[name=mode]:checked").value;
  }

  function body() {
    return {
      paths: paths.slice(),
      dataset: $("#dataset-name").value.trim(),
      proposal: $("#proposal").value.trim() || null,
      description: $("#description").value.trim() || null,
      investigation_description: $("#investigation-description").value.trim() || null,
      include: TA.patterns($("#include").value),
      exclude: TA.patterns($("#exclude").value),
      mode: mode(),
      ...TA.metadata.body(),
    };
  }

  /** Checks the browser can make before asking the agent; returns false and focuses the culprit. */
  function complete() {
    TA.clearFieldErrors(form);
    const pending = pathInput.value.trim();
    if (pending) addTyped(); // a typed but not yet added path counts
    const name = $("#dataset-name");
    name.removeAttribute("aria-invalid");
    if (!paths.length) {
      say(errorBox, "error", "Add at least one folder or file.");
      pathInput.focus();
      return false;
    }
    if (!name.value.trim()) {
      say(errorBox, "error", "Give the dataset a name.");
      name.setAttribute("aria-invalid", "true");
      name.focus();
      return false;
    }
    if (!TA.metadata.check()) {
      say(errorBox, "error", "Fix the marked metadata fields.", "The beamline template needs them.");
      return false;
    }
    return true;
  }

  /** An error from the agent: beside its metadata field when it names one, and in the error box. */
  function showError(exc) {
    sayError(errorBox, exc);
    if (TA.metadata.showError(exc)) return;
    TA.fieldError(TA.inputFor(exc, { dataset: $("#dataset-name"), proposal: $("#proposal"),
                                     metadata: $("#keywords") }), exc.message);
  }

  function showPreview(answer) {
    const rows = $("#preview-rows");
    const marker = "/" + answer.storage_path.replace(/^\/+|\/+$/g, "") + "/";
    rows.replaceChildren(...answer.files.map((f) => {
      const at = f.remote.indexOf(marker);
      const shown = at >= 0 ? f.remote.slice(at + 1) : f.remote;
      return el("tr", {}, el("td", { className: "mono" }, f.local), el("td", { className: "mono", title: f.remote }, shown),
        el("td", { className: "num" }, formatBytes(f.size)));
    }));
    const first = answer.files[0];
    const base = first && first.remote.indexOf(marker) >= 0
      ? first.remote.slice(0, first.remote.indexOf(marker) + marker.length - 1) : answer.storage_path;
    const summary = $("#preview-summary");
    summary.replaceChildren(
      el("strong", {}, plural(answer.count, "file") + ", " + formatBytes(answer.bytes)),
      " will go to ", el("code", {}, base),
      answer.count > answer.files.length ? " (the first " + answer.files.length + " are listed)" : "");
    $("#preview-errors").replaceChildren(...(answer.errors || []).map((e) => el("li", {}, "Skipped: " + e)));
    $("#preview").hidden = false;
  }

  $("#preview-button").addEventListener("click", async (event) => {
    say(errorBox, "", "");
    if (!complete()) return;
    say(statusBox, "info", "Scanning…");
    await TA.busy(event.currentTarget, async () => {
      try {
        const answer = await api("POST", "/api/preview", body());
        showPreview(answer);
        say(statusBox, "info", "Preview: " + plural(answer.count, "file") + ", " + formatBytes(answer.bytes) +
            ". Nothing has been uploaded yet.");
      } catch (exc) {
        say(statusBox, "", "");
        showError(exc);
      }
    });
  });

  let started = false;
  function dirty() {
    if (started) {
      started = false;
      $("#start").disabled = false;
    }
  }
  form.addEventListener("input", dirty);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (started) return;
    say(errorBox, "", "");
    if (!complete()) return;
    const b = body();
    const start = $("#start");
    say(statusBox, "info", "Starting…");
    await TA.busy(start, async () => {
      try {
        const answer = await api("POST", b.mode === "sync" ? "/api/sync" : "/api/upload", b);
        started = true;
        say(statusBox, "ok", (b.mode === "sync" ? "Syncing " : "Uploading ") + "“" + b.dataset + "” to " +
            answer.storage_path + ". You can close this window; Activity shows the progress.");
        $("#open-activity").hidden = false;
        if (b.mode !== "sync") followUpload(answer.dataset_id, b.dataset);
      } catch (exc) {
        say(statusBox, "", "");
        showError(exc);
      }
    });
    if (started) start.disabled = true;
  });

  /** "Uploading…" must not outlive the upload: wait for the dataset (the agent answers when it
   *  completes, or after 25 s) and then say how it ended. */
  async function followUpload(id, name) {
    for (;;) {
      let d;
      try {
        d = await api("POST", `/api/datasets/${id}/wait`, { timeout: 25 });
      } catch (exc) {
        return; // the agent is gone or restarted: Activity tells the rest
      }
      if (started === false) return; // the form was changed for a new dataset
      if (d.state === "cancelled") {
        say(statusBox, "warn", "“" + name + "” was cancelled (in Activity): " +
            plural(d.files.registered || 0, "file") + " registered; the rest was not sent.");
        return;
      }
      if (d.state === "complete") {
        const failed = d.files.failed || 0;
        say(statusBox, failed ? "warn" : "ok", "“" + name + "” is complete: " +
            plural(d.files.registered || 0, "file") + ", " + formatBytes(d.bytes_done) + " registered" +
            (failed ? "; " + failed + " failed (see Activity)." : "."));
        return;
      }
    }
  }

  $("#open-activity").addEventListener("click", async () => {
    try {
      await api("POST", "/api/show/activity", {});
    } catch (exc) {
      sayError(errorBox, exc);
    }
  });

  // -- prefill from the request that opened this dialog (e.g. folders dropped on the launcher) ----
  async function prefill() {
    if (!TA.request) return;
    try {
      const req = await api("GET", "/api/requests/" + encodeURIComponent(TA.request));
      addPaths(req.paths || []);
      // "Start sync..." opens this dialog in sync mode, "Upload folder..." in batch mode
      const chosen = req.mode && form.querySelector(`input[name=mode][value="${req.mode}"]`);
      if (chosen) chosen.checked = true;
      for (const [key, id] of [["dataset", "#dataset-name"], ["proposal", "#proposal"],
                               ["description", "#description"]]) {
        if (req[key]) $(id).value = req[key];
      }
    } catch (exc) {
      sayError(errorBox, exc);
    }
  }

  prefill().then(() => (paths.length ? $("#dataset-name") : pathInput).focus());
})();
