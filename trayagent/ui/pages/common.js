/* Shared by every dialog page: the control-API token, fetch with it, messages, formatting, closing.
 *
 * The page is opened as /ui/NAME.html#token=TOKEN&request=ID. The fragment never travels to a server;
 * the token goes back to the agent only in the Authorization header of our own requests.
 */
"use strict";

const TA = (() => {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  let token = params.get("token") || sessionStorage.getItem("trayagent-token") || "";
  const request = params.get("request") || "";
  // In a web browser (no GTK or Qt for the native window) the URL carries a one-time ticket instead of
  // the token: traded once, then dropped from the address bar.
  const ticket = params.get("ticket") || "";
  const ready = ticket && !token ? redeem(ticket) : Promise.resolve();

  async function redeem(value) {
    try {
      const resp = await fetch("/api/ticket", { method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ticket: value }) });
      const data = await resp.json();
      if (resp.ok) {
        token = data.token || "";
        sessionStorage.setItem("trayagent-token", token); // a reload of this tab keeps working
      }
    } catch (exc) {
      token = "";
    }
    history.replaceState(null, "", location.pathname + (request ? "#request=" + request : ""));
  }

  /** An error answered by the agent ({error, hint}) or met on the way (no agent, bad JSON). */
  class ApiError extends Error {
    constructor(status, message, hint, field) {
      super(message);
      this.status = status;
      this.hint = hint || "";
      this.field = field || "";
    }
    /** The agent has no such route (an older agent, or a feature not wired up yet). */
    get noSuchApi() {
      return this.status === 404 && /^no such API/.test(this.message);
    }
  }

  /** Call the agent: api("GET", "/api/status") or api("POST", "/api/upload", {...}). */
  async function api(method, path, body) {
    await ready;
    const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (exc) {
      throw new ApiError(0, "The trayagent agent does not answer.", "Is it still running? Start it with `trayagent`.");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (exc) {
      data = null;
    }
    if (!resp.ok) {
      const message = (data && data.error) || `The agent answered ${resp.status}.`;
      throw new ApiError(resp.status, message, data && data.hint, data && data.field);
    }
    return data;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  /** Create an element: el("li", {className: "x"}, "text", child). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("aria-") || key === "role" || key === "for") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** Show a message in an aria-live region; kind is error | ok | info | warn; "" clears it. */
  function say(region, kind, text, hint) {
    region.className = "message " + (kind || "");
    region.replaceChildren();
    if (!text) return;
    region.append(text);
    if (hint) region.append(el("span", { className: "hint-text" }, hint));
  }

  function sayError(region, exc) {
    if (exc instanceof ApiError) say(region, "error", exc.message, exc.hint);
    else say(region, "error", String(exc && exc.message ? exc.message : exc));
  }

  function formatBytes(n) {
    if (n === null || n === undefined || isNaN(n)) return "–";
    const units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let i = 0;
    let v = Number(n);
    while (v >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)) + " " + units[i];
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
    const h = Math.floor(m / 60);
    return h + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /** Inside the trayagent window (pywebview), not a plain browser. */
  function native() {
    return !!(window.pywebview && window.pywebview.platform);
  }

  /** Call a helper of the native window (dialogs.py passes them to pywebview as js_api): close, pick.
   *
   * pywebview builds window.pywebview.api.NAME with `new Function`, which our CSP (no 'unsafe-eval')
   * refuses; so when those functions are missing, talk to pywebview's bridge the way they would.
   * Returns a promise, or null outside pywebview. */
  function nativeCall(name, ...args) {
    const pv = window.pywebview;
    if (!pv) return null;
    if (pv.api && typeof pv.api[name] === "function") return pv.api[name](...args);
    if (typeof pv._jsApiCallback !== "function" || typeof pv._checkValue !== "function") return null;
    pv._returnValuesCallbacks = pv._returnValuesCallbacks || {};
    pv._returnValuesCallbacks[name] = pv._returnValuesCallbacks[name] || {};
    const id = String(Math.random()).slice(2);
    const answer = new Promise((resolve, reject) => pv._checkValue(name, resolve, reject, id));
    pv._jsApiCallback(name, args, id);
    return answer;
  }

  /** Run ``callback`` once the page knows it runs in pywebview (its object arrives after our scripts). */
  function whenNative(callback) {
    let tries = 0;
    const timer = setInterval(() => {
      tries += 1;
      if (native()) {
        clearInterval(timer);
        callback();
      } else if (tries > 50) {
        clearInterval(timer);
      }
    }, 100);
  }

  function closeWindow() {
    if (nativeCall("close") === null) window.close();
  }

  /** Escape closes the dialog (unless a handler wants it first, e.g. a drop-down). */
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      event.preventDefault();
      closeWindow();
    }
  });

  /** Every element with data-close closes the window. */
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]")) closeWindow();
  });

  /** Split a pattern box: one glob per line (commas also separate). */
  function patterns(text) {
    return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
  }

  /** An error shown at the input it is about: marked invalid (aria-invalid), its message right after it
   *  (and read with it: aria-describedby), focused. Nothing without an input. Returns whether shown. */
  function fieldError(input, text) {
    if (!input) return false;
    const id = (input.id || input.name || "field") + "-error";
    let note = document.getElementById(id);
    if (!note) {
      note = el("span", { id, className: "field-error" });
      input.insertAdjacentElement("afterend", note);
      const described = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      input.setAttribute("aria-describedby", [id, ...described].join(" "));
    }
    note.textContent = text;
    note.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.dataset.fieldError = "true";
    input.focus();
    return true;
  }

  /** Take back what fieldError showed (before the next try). */
  function clearFieldErrors(root) {
    for (const note of (root || document).querySelectorAll(".field-error")) {
      note.hidden = true;
      note.textContent = "";
    }
    for (const input of (root || document).querySelectorAll("[data-field-error]")) {
      input.removeAttribute("aria-invalid");
      delete input.dataset.fieldError;
    }
  }

  /** The input an agent's error names (``exc.field``: "storage.remote", "dataset"...) among ``inputs``
   *  ({field: element}); null if it names none of them. */
  function inputFor(exc, inputs) {
    const field = exc && exc.field;
    return (field && inputs[field]) || null;
  }

  /** Disable a button while an async action runs; returns the action's result. */
  async function busy(button, action) {
    button.disabled = true;
    document.body.setAttribute("aria-busy", "true");
    try {
      return await action();
    } finally {
      button.disabled = false;
      document.body.removeAttribute("aria-busy");
    }
  }

  return { token, request, api, ApiError, $, el, say, sayError, formatBytes, formatDuration, plural, native,
           nativeCall, whenNative, closeWindow, patterns, busy, fieldError, clearFieldErrors, inputFor };
})();
