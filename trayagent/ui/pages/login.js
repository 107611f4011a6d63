/* Login dialog: the storage account (its password) or the catalogue (user + password, or a token),
 * sent to POST /api/login. The tray opens it on the storage account when the storage refused the
 * password; otherwise on the catalogue, or on whichever of the two needs a login at all. */
"use strict";

(() => {
  const { api, $, say, sayError } = TA;
  const form = $("#login-form");
  const result = $("#result");
  let catalogueKind = "";
  let storage = { needed: false, user: "", storage: "" };
  let catalogueUser = "";

  function account() {
    return form.querySelector("input[name=account]:checked").value;
  }

  function method() {
    return account() === "storage" ? "password" : form.querySelector("input[name=method]:checked").value;
  }

  function showMethod() {
    const token = method() === "token";
    $("#password-fields").hidden = token;
    $("#token-fields").hidden = !token;
  }
  for (const radio of form.querySelectorAll("input[name=method]")) radio.addEventListener("change", showMethod);

  /** The storage account: the user is the configured one (read-only); only the password is asked. */
  function showAccount() {
    const onStorage = account() === "storage";
    $("#methods").hidden = onStorage;
    $("#methods-legend").textContent = onStorage ? "Storage password" : "Sign in with";
    $("#storage-state").hidden = !onStorage;
    $("#heading").textContent = onStorage ? "Log in to the storage" : "Log in to the catalogue";
    const user = $("#user");
    if (onStorage && !user.readOnly) catalogueUser = user.value;
    user.value = onStorage ? storage.user : catalogueUser;
    user.readOnly = onStorage; // the configured storage user (Settings); not a field to edit here
    user.tabIndex = onStorage ? -1 : 0;
    $("#catalogue").textContent = onStorage
      ? "Files are uploaded to " + storage.storage + " as " + storage.user + "."
      : catalogueKind === "scicat" && catalogueUrl ? "Log in to the SciCat catalogue at " + catalogueUrl + "."
        : "Datasets are registered in the data catalogue under your account.";
    say(result, "", "");
    showMethod();
  }
  for (const radio of form.querySelectorAll("input[name=account]")) radio.addEventListener("change", () => {
    showAccount();
    (account() === "storage" ? $("#password") : $("#user")).focus();
  });
  let catalogueUrl = "";

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
    TA.clearFieldErrors(form);
    if (!check()) return;
    const body = method() === "token" ? { token: $("#token").value.trim() }
      : { user: $("#user").value.trim(), password: $("#password").value };
    if (account() === "storage") body.account = "storage";
    say(result, "info", "Logging in…");
    await TA.busy($("#submit"), async () => {
      try {
        const answer = await api("POST", "/api/login", body);
        const who = (answer && (answer.name || answer.user)) || body.user;
        say(result, "ok", "Logged in" + (typeof who === "string" && who ? " as " + who : "") + ".",
            body.account === "storage"
              ? "The storage accepted the password; it is kept in your keyring and waiting uploads resume now."
              : "The agent keeps the login in your keyring; you can close this window.");
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
        const secret = method() === "token" ? $("#token") : $("#password");
        // beside the field the agent names (the user, the password); a refusal without one: the secret
        const named = TA.inputFor(exc, { user: $("#user"), secret, "storage.secret": secret });
        const at = named && !named.readOnly ? named : secret;
        if (at === secret) secret.value = "";
        TA.fieldError(at, exc.message);
      }
    });
  });

  async function describeAccounts() {
    try {
      const answer = await api("GET", "/api/settings");
      const cat = (answer.settings && answer.settings.catalogue) || {};
      catalogueKind = cat.kind || "";
      catalogueUrl = cat.url || "";
      try {
        storage = await api("GET", "/api/storage");
      } catch (exc) {
        if (!(exc instanceof TA.ApiError && exc.status === 404)) throw exc; // an older agent: catalogue only
      }
      const req = TA.request ? await api("GET", "/api/requests/" + encodeURIComponent(TA.request)) : {};
      if (req.user) catalogueUser = req.user;
      $("#user").value = catalogueUser;
      // the storage account is offered when it has a password at all; chosen when asked or when it alone needs one
      $("#accounts").hidden = !storage.needed;
      $("#account-choice").hidden = catalogueKind !== "scicat"; // the local catalogue has no login
      $("#storage-state").textContent = storage.refused
        ? "Uploads wait: " + storage.refused : "Uploads to " + storage.storage + " use this password.";
      const onStorage = storage.needed && (req.account === "storage" || !!storage.refused || catalogueKind !== "scicat");
      $(onStorage ? "#account-storage" : "#account-catalogue").checked = true;
      showAccount();
      (onStorage ? $("#password") : $("#user")).focus();
    } catch (exc) {
      sayError(result, exc);
    }
  }

  describeAccounts();
  $("#user").focus();
})();
