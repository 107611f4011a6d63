/* Login dialog: catalogue user + password, or a token, sent to POST /api/login. */
"use strict";

(() => {
  const { api, $, say, sayError } = TA;
  const form = $("#login-form");
  const result = $("#result");
  let catalogueKind = "";

  function method() {
    return form.querySelector("input[name=method]:checked").value;
  }

  function showMethod() {
    const token = method() === "token";
    $("#password-fields").hidden = token;
    $("#token-fields").hidden = !token;
  }
  for (const radio of form.querySelectorAll("input[name=method]")) radio.addEventListener("change", showMethod);

  function invalid(input, text) {
    input.setAttribute("aria-invalid", "true");
    say(result, "error", text);
    input.focus();
    return false;
  }

  function check() {
    for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
    if (method() === "token") return $("#token").value.trim() ? true : invalid($("#token"), "Paste your token.");
    if (!$("#user").value.trim()) return invalid($("#user"), "Give your user name.");
    if (!$("#password").value) return invalid($("#password"), "Give your password.");
    return true;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!check()) return;
    const body = method() === "token" ? { token: $("#token").value.trim() }
      : { user: $("#user").value.trim(), password: $("#password").value };
    say(result, "info", "Logging in…");
    await TA.busy($("#submit"), async () => {
      try {
        const answer = await api("POST", "/api/login", body);
        const who = (answer && (answer.name || answer.user)) || body.user;
        say(result, "ok", "Logged in" + (typeof who === "string" && who ? " as " + who : "") + ".",
            "The agent keeps the login in your keyring; you can close this window.");
        $("#password").value = "";
        $("#token").value = "";
        $("#close").textContent = "Close";
        $("#close").focus();
      } catch (exc) {
        if (exc instanceof TA.ApiError && exc.status === 404) {
          // The embedded local catalogue (or an agent without catalogue login): nothing to log in to.
          say(result, "info", catalogueKind === "scicat"
            ? "This agent cannot log in to the catalogue from here."
            : "The local catalogue needs no login.",
            catalogueKind === "scicat" ? "Use `trayagent login` or update trayagent."
              : "Datasets are registered on this computer.");
          return;
        }
        sayError(result, exc);
        const field = method() === "token" ? $("#token") : $("#password");
        field.value = "";
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }
    });
  });

  async function describeCatalogue() {
    try {
      const answer = await api("GET", "/api/settings");
      const cat = (answer.settings && answer.settings.catalogue) || {};
      catalogueKind = cat.kind || "";
      if (cat.kind === "scicat" && cat.url) {
        $("#catalogue").textContent = "Log in to the SciCat catalogue at " + cat.url + ".";
      }
      if (answer.settings && answer.settings.catalogue && !$("#user").value && TA.request) {
        const req = await api("GET", "/api/requests/" + encodeURIComponent(TA.request));
        if (req.user) $("#user").value = req.user;
      }
    } catch (exc) {
      sayError(result, exc);
    }
  }

  describeCatalogue();
  $("#user").focus();
})();
