/* Settings dialog: the profile form, loaded from GET /api/settings and saved with POST /api/settings. */
"use strict";

(() => {
  const { api, $, say, sayError } = TA;
  const form = $("#settings-form");
  const result = $("#result");
  let loaded = null; // the agent's full settings: keys without a field here are saved unchanged

  function fields() {
    return Array.from(form.querySelectorAll("[data-key]"));
  }

  /** The input of a field the agent names: a key of the form ("storage.remote"), or the password. */
  function named(field) {
    if (field === "storage.secret") return $("#storage-password");
    return fields().find((input) => input.dataset.key === field && !input.disabled) || null;
  }

  /** The part of a message that is about the field: "settings: [storage] remote: expected ..." -> "expected ...". */
  function beside(message) {
    return String(message).replace(/^[^[]*\[[a-z]+\] [a-z_]+: /, "");
  }

  /** The agent's error: in the result box, and beside the field it names. */
  function showError(box, exc) {
    sayError(box, exc);
    if (exc && exc.field) TA.fieldError(named(exc.field), beside(exc.message));
  }

  function split(input) {
    const [section, key] = input.dataset.key.split(".");
    return { section, key };
  }

  function fill(settings) {
    for (const input of fields()) {
      const { section, key } = split(input);
      const value = (settings[section] || {})[key];
      if (input.type === "checkbox") input.checked = !!value;
      else input.value = value === null || value === undefined ? "" : String(value);
    }
  }

  /** The settings to save, or null after marking the first bad field. */
  function collect() {
    const out = JSON.parse(JSON.stringify(loaded));
    for (const input of fields()) {
      input.removeAttribute("aria-invalid");
      const { section, key } = split(input);
      let value;
      if (input.type === "checkbox") {
        value = input.checked;
      } else if (input.dataset.type === "int-auto" && ["", "auto"].includes(input.value.trim().toLowerCase())) {
        value = "auto";
      } else if (input.dataset.type) {
        const text = input.value.trim();
        const whole = input.dataset.type !== "float";
        value = whole ? Number.parseInt(text, 10) : Number.parseFloat(text);
        if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0) || (whole && String(value) !== text)) {
          input.setAttribute("aria-invalid", "true");
          const label = form.querySelector(`label[for="${input.id}"]`).textContent;
          say(result, "error", label + ": give a number greater than 0" + (whole ? " without decimals" : "") +
              (input.dataset.type === "int-auto" ? ", or auto." : "."));
          input.focus();
          return null;
        }
      } else {
        value = input.value.trim();
      }
      out[section] = out[section] || {};
      out[section][key] = value;
    }
    return out;
  }

  /** Keys the facility's site-wide file locks: shown, but not editable. */
  function showLocked(locked, siteFile) {
    let any = false;
    for (const input of fields()) {
      if (!locked.has(input.dataset.key)) continue;
      any = true;
      input.disabled = true;
      input.dataset.locked = "true";
      input.title = "Set by your facility in " + siteFile;
    }
    const note = $("#locked-note");
    note.hidden = !any;
    if (any) $("#site-file").textContent = siteFile;
  }

  async function load() {
    try {
      const answer = await api("GET", "/api/settings");
      loaded = answer.settings;
      fill(loaded);
      $("#autostart").checked = !!answer.autostart;
      $("#config-file").textContent = answer.config_file || "config.toml";
      showLocked(new Set(answer.locked || []), answer.site_file || "");
    } catch (exc) {
      sayError(result, exc);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(result, "", "");
    TA.clearFieldErrors(form);
    if (!loaded) return;
    const settings = collect();
    if (!settings) return;
    await TA.busy($("#save"), async () => {
      try {
        const body = { settings, autostart: $("#autostart").checked };
        if ($("#storage-password").value) body.storage_password = $("#storage-password").value;
        const answer = await api("POST", "/api/settings", body);
        loaded = settings;
        $("#storage-password").value = "";
        say(result, "ok", "Saved.", answer.restart_needed
          ? "Storage and transfer changes apply when the agent restarts (Quit in the tray menu, then start trayagent)."
          : "Applied at once, no restart needed." +
            (body.storage_password ? " The storage password is kept in your keyring." : ""));
      } catch (exc) {
        showError(result, exc);
      }
    });
  });

  $("#test").addEventListener("click", async (event) => {
    const box = $("#test-result");
    TA.clearFieldErrors(form);
    if (!loaded) return;
    const settings = collect();
    if (!settings) return;
    say(box, "info", "Testing the connection to the storage in this form…");
    await TA.busy(event.currentTarget, async () => {
      try {
        const body = { settings };
        if ($("#storage-password").value) body.storage_password = $("#storage-password").value;
        const answer = await api("POST", "/api/settings/test", body);
        if (answer.ok) say(box, "ok", "Connection OK: " + answer.storage);
        else {
          say(box, "error", "Connection failed: " + answer.error, answer.hint);
          if (answer.field) TA.fieldError(named(answer.field), answer.error);
        }
      } catch (exc) {
        showError(box, exc);
      }
    });
  });

  load().then(() => $("#storage-remote").focus());
})();
