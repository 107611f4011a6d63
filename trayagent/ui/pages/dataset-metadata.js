/* Dataset dialog, scientific metadata: the beamline template's form (defaults, units, required marks,
   inline messages), free key/value/unit rows, and keywords. dataset.js calls TA.metadata.body(),
   .check() before asking the agent, and .showError(exc) when the agent names a metadata field. */
"use strict";

(() => {
  const { api, $, el } = TA;
  const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
  let fields = [];

  // -- the template's form ------------------------------------------------------------------------
  function control(f) {
    const id = "meta-" + f.key;
    const describedBy = "meta-error-" + f.key;
    const common = { id, name: id, "aria-describedby": describedBy, dataset: { key: f.key } };
    if (f.required) common["aria-required"] = "true";
    if (Array.isArray(f.allowed) && f.allowed.length) {
      const select = el("select", common, el("option", { value: "" }, "—"),
        ...f.allowed.map((v) => el("option", { value: String(v) }, String(v))));
      if (f.default !== null && f.default !== undefined) select.value = String(f.default);
      return select;
    }
    const input = el("input", { ...common, type: "text", autocomplete: "off", spellcheck: false });
    if (f.type === "number" || f.type === "integer") input.inputMode = "decimal";
    if (f.default !== null && f.default !== undefined) input.value = String(f.default);
    return input;
  }

  function renderTemplate(template) {
    fields = template.fields || [];
    const box = $("#template-fields");
    const info = $("#template-info");
    if (!fields.length) {
      info.textContent = "No beamline template is configured: add entries below.";
      box.replaceChildren();
      return;
    }
    info.textContent = "Fields of the template “" + template.title + "”. * marks a required field.";
    box.replaceChildren(...fields.map((f) => {
      const label = el("label", { for: "meta-" + f.key }, f.title,
        f.required ? el("span", { className: "required", "aria-hidden": "true" }, " *") : null,
        f.unit ? el("span", { className: "unit" }, " (" + f.unit + ")") : null);
      const hint = f.description ? el("span", { className: "hint" }, f.description) : null;
      return el("div", { className: "field meta-field" }, label, control(f), hint,
        el("p", { id: "meta-error-" + f.key, className: "field-error", role: "alert" }));
    }));
    for (const input of box.querySelectorAll("input, select")) {
      input.addEventListener("change", () => checkField(fields.find((f) => f.key === input.dataset.key)));
    }
  }

  // -- free entries -------------------------------------------------------------------------------
  function addRow(key, value, unit) {
    const rows = $("#metadata-rows");
    const n = rows.children.length + 1;
    const row = el("tr", {},
      el("td", {}, el("input", { type: "text", className: "meta-key", value: key || "", "aria-label": "Name " + n })),
      el("td", {}, el("input", { type: "text", className: "meta-value", value: value || "", "aria-label": "Value " + n })),
      el("td", {}, el("input", { type: "text", className: "meta-unit", value: unit || "", "aria-label": "Unit " + n })),
      el("td", {}, el("button", { type: "button", className: "small", "aria-label": "Remove entry " + n,
                                  onclick: () => row.remove() }, "Remove")));
    rows.append(row);
    return row;
  }

  // -- checks in the browser (the agent checks again against the same template) ------------------
  function setError(key, text) {
    const input = $("#meta-" + CSS.escape(key));
    const box = $("#meta-error-" + CSS.escape(key));
    if (!input || !box) return false;
    box.textContent = text || "";
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return true;
  }

  function problem(f, raw) {
    const text = raw.trim();
    if (!text) return f.required ? "Required: give a value." : "";
    if (f.type === "number" || f.type === "integer") {
      if (!NUMBER.test(text)) return "A number is needed" + (f.unit ? " (in " + f.unit + ")" : "") + ".";
      const v = Number(text);
      if (f.type === "integer" && !Number.isInteger(v)) return "A whole number is needed.";
      if (f.minimum !== null && f.minimum !== undefined && v < f.minimum) return "At least " + f.minimum + ".";
      if (f.maximum !== null && f.maximum !== undefined && v > f.maximum) return "At most " + f.maximum + ".";
    }
    return "";
  }

  function checkField(f) {
    if (!f) return true;
    const input = $("#meta-" + CSS.escape(f.key));
    const text = problem(f, input ? input.value : "");
    setError(f.key, text);
    return !text;
  }

  /** True when every template field is acceptable; else the first bad field has the focus. */
  function check() {
    let first = null;
    for (const f of fields) {
      if (!checkField(f) && !first) first = $("#meta-" + CSS.escape(f.key));
    }
    if (first) {
      first.scrollIntoView({ block: "center" }); // not under the sticky buttons
      first.focus();
    }
    return !first;
  }

  function typed(text) {
    return NUMBER.test(text) ? Number(text) : text;
  }

  function body() {
    const metadata = {};
    for (const row of $("#metadata-rows").children) {
      const key = row.querySelector(".meta-key").value.trim();
      const value = row.querySelector(".meta-value").value.trim();
      if (key && value) metadata[key] = { value: typed(value), unit: row.querySelector(".meta-unit").value.trim() };
    }
    for (const f of fields) {
      const input = $("#meta-" + CSS.escape(f.key));
      const value = input ? input.value.trim() : "";
      if (value) metadata[f.key] = { value: f.type === "string" ? value : typed(value), unit: f.unit || "" };
    }
    const keywords = $("#keywords").value.split(/[,\n]/).map((k) => k.trim()).filter(Boolean);
    return { keywords, metadata };
  }

  /** The agent named a field (metadata.KEY): show its message there. True if shown inline. */
  function showError(exc) {
    const field = exc && exc.field;
    if (!field || !field.startsWith("metadata.")) return false;
    const key = field.slice("metadata.".length);
    const own = String(exc.message).split(/: |; /).find((part, i, all) => all[i - 1] === key);
    if (!setError(key, own || exc.message)) return false;
    const input = $("#meta-" + CSS.escape(key));
    input.scrollIntoView({ block: "center" });
    input.focus();
    return true;
  }

  $("#add-metadata").addEventListener("click", () => addRow().querySelector(".meta-key").focus());

  async function load() {
    try {
      renderTemplate(await api("GET", "/api/template"));
    } catch (exc) {
      $("#template-info").textContent = "The beamline template cannot be read: " + exc.message;
    }
  }

  TA.metadata = { body, check, showError, addRow, loaded: load() };
})();
