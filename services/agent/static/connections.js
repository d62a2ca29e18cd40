// Connected accounts page (/connections): each outbound account the agent may use, with its status, the
// permissions it asks for and the dates, and Connect or Disconnect. Plain JavaScript, no build step.
//
// Served under the chat page's Content-Security-Policy (script-src 'self', style-src 'self',
// connect-src 'self'): no inline code or styles, no eval, and every text from the server is inserted
// with textContent, never as HTML.
//
// Protocol (services/agent/connections.py): GET /api/connections answers {"connections": [{name,
// display_name, permissions, status ("connected" | "disconnected" | "not_connected"), connected_at,
// last_used_at, disconnected_at (epoch seconds or null)}]}; POST /api/connections/<name>/connect {}
// answers {"status": "connected"} or {"status": "consent_required", "start_url": "/oauth2/start?flow=…"},
// where the browser goes; POST /api/connections/<name>/disconnect {} answers {"status": "disconnected",
// "message": <a sentence to show>}. Errors are {"error": <code>, "message": <a sentence to show>}.
// GET /api/session and POST /api/sign-out as on the chat page (app.js).
"use strict";

(function () {
  const START_URL_PREFIX = "/oauth2/start?flow=";
  // The chat page's (app.js) keys: signing out in this tab forgets its conversation too, as app.js does.
  const CHAT_STORAGE_KEYS = ["agent.history", "agent.pending", "agent.user"];
  const NAME_PATTERN = /^[a-z][a-z0-9-]{0,19}$/;
  const STATUS_WORDS = { connected: "Connected", disconnected: "Disconnected", not_connected: "Not connected" };

  const TEXT = {
    sessionEnded: "Your session has ended \u2014 reload the page to sign in again.",
    network: "Could not reach the agent. Check your connection and try again.",
    unexpected: "Something went wrong. Please try again.",
    badStartUrl: "The agent answered with a sign-in link this page does not trust, so you were not sent there.",
    signingOut: "Signing out\u2026",
    connecting: (name) => "Connecting " + name + "\u2026",
    disconnecting: (name) => "Disconnecting " + name + "\u2026",
    connected: (name) => name + " is connected.",
    disconnected: (name) => "Disconnected " + name + ".",
    leaving: (name) => "Taking you to " + name + " to give your permission\u2026",
    confirm: (name) => "Disconnect " + name + "? The agent will not use this account until you connect it again.",
  };

  const els = {
    page: document.getElementById("connections-page"),
    status: document.getElementById("page-status"),
    retryRow: document.getElementById("retry-row"),
    retry: document.getElementById("retry"),
    loading: document.getElementById("loading"),
    empty: document.getElementById("no-connections"),
    list: document.getElementById("connection-list"),
    account: document.getElementById("account"),
    signedInAs: document.getElementById("signed-in-as"),
    signOut: document.getElementById("sign-out"),
  };

  // Browser's locale and time zone; e.g. "7 Dec 2026, 10:31" in en-GB.
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  let busy = false;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function button(text, className) {
    const node = el("button", "button " + className, text);
    node.type = "button";
    return node;
  }

  function say(text, kind) {
    els.status.textContent = text;
    els.status.setAttribute("data-kind", kind || "info");
  }

  // ---------------------------------------------------------------- requests

  // {body} for a JSON object answered with 2xx, else {error} with the sentence to show.
  async function requestJson(method, path) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { accept: "application/json" },
      cache: "no-store",
      redirect: "manual", // an expired sign-in is a redirect to the identity provider
    };
    if (method === "POST") {
      options.headers["content-type"] = "application/json";
      options.body = "{}"; // the API takes exactly an empty object, which a cross-site form cannot send
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (_err) {
      return { error: TEXT.network };
    }
    if (response.type === "opaqueredirect" || response.status === 401) {
      return { error: TEXT.sessionEnded };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_err) {
      // not JSON
    }
    const isObject = body !== null && typeof body === "object" && !Array.isArray(body);
    if (response.ok) {
      return isObject ? { body } : { error: TEXT.unexpected };
    }
    if (isObject && typeof body.message === "string" && body.message) {
      return { error: body.message };
    }
    return { error: TEXT.unexpected + " (HTTP " + response.status + ")" };
  }

  function actionPath(name, action) {
    return "/api/connections/" + encodeURIComponent(name) + "/" + action;
  }

  // The same check as the chat page's (app.js): a path on this origin, and only the start path.
  function isTrustedStartUrl(value) {
    if (typeof value !== "string" || !value.startsWith(START_URL_PREFIX)) {
      return false;
    }
    try {
      const url = new URL(value, window.location.origin);
      return url.origin === window.location.origin && url.pathname === "/oauth2/start";
    } catch (_err) {
      return false;
    }
  }

  // ---------------------------------------------------------------- reading the answer

  function epochOrNull(value) {
    return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
  }

  // One entry of GET /api/connections as the page uses it, or null when it is not one.
  function readConnection(entry) {
    if (entry === null || typeof entry !== "object" || typeof entry.name !== "string" || !NAME_PATTERN.test(entry.name)) {
      return null;
    }
    const permissions = Array.isArray(entry.permissions) ? entry.permissions.filter((p) => typeof p === "string" && p) : [];
    return {
      name: entry.name,
      displayName: typeof entry.display_name === "string" && entry.display_name ? entry.display_name : entry.name,
      permissions,
      status: Object.prototype.hasOwnProperty.call(STATUS_WORDS, entry.status) ? entry.status : "not_connected",
      connectedAt: epochOrNull(entry.connected_at),
      lastUsedAt: epochOrNull(entry.last_used_at),
      disconnectedAt: epochOrNull(entry.disconnected_at),
    };
  }

  // ---------------------------------------------------------------- cards

  function dateLine(label, seconds) {
    const date = new Date(seconds * 1000);
    const line = el("li", "connection-date", label + " ");
    const time = el("time", "", dateFormat.format(date));
    time.dateTime = date.toISOString();
    line.appendChild(time);
    return line;
  }

  function cardDates(conn) {
    const dates = el("ul", "connection-dates");
    if (conn.connectedAt !== null) {
      dates.appendChild(dateLine("Connected on", conn.connectedAt));
    }
    if (conn.lastUsedAt !== null) {
      dates.appendChild(dateLine("Last used on", conn.lastUsedAt));
    }
    if (conn.disconnectedAt !== null) {
      dates.appendChild(dateLine("Disconnected on", conn.disconnectedAt));
    }
    return dates;
  }

  function cardPermissions(conn, id) {
    const block = el("div", "connection-permissions");
    const caption = el("p", "connection-caption", "Permissions:");
    caption.id = id + "-permissions";
    block.appendChild(caption);
    if (conn.permissions.length === 0) {
      block.appendChild(el("p", "connection-note", "None listed."));
      return block;
    }
    const list = el("ul", "connection-permission-list");
    list.setAttribute("aria-labelledby", caption.id);
    for (const permission of conn.permissions) {
      list.appendChild(el("li", "connection-permission", permission));
    }
    block.appendChild(list);
    return block;
  }

  // Disconnect asks here, in the card: "Disconnect" again goes ahead, "Keep connected" (or Escape) does not.
  function confirmRow(conn, id, actions, opener) {
    const row = el("div", "connection-confirm");
    row.hidden = true;
    row.setAttribute("role", "group");
    const question = el("p", "connection-question", TEXT.confirm(conn.displayName));
    question.id = id + "-question";
    row.setAttribute("aria-labelledby", question.id);
    const yes = button("Disconnect", "button-danger");
    const keep = button("Keep connected", "button-secondary");
    const close = () => {
      row.hidden = true;
      actions.hidden = false;
      opener.focus();
    };
    keep.addEventListener("click", close);
    row.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !busy) {
        close();
      }
    });
    yes.addEventListener("click", () => disconnect(conn));
    const buttons = el("div", "connection-buttons");
    buttons.append(yes, keep);
    row.append(question, buttons);
    opener.addEventListener("click", () => {
      actions.hidden = true;
      row.hidden = false;
      keep.focus(); // the choice that changes nothing
    });
    return row;
  }

  function cardActions(conn, id, card) {
    const actions = el("div", "connection-buttons");
    const heading = id + "-heading";
    if (conn.status === "connected") {
      const opener = button("Disconnect", "button-secondary connection-action");
      opener.setAttribute("aria-describedby", heading);
      actions.appendChild(opener);
      card.append(actions, confirmRow(conn, id, actions, opener));
    } else {
      const connectButton = button("Connect", "button-primary connection-action");
      connectButton.setAttribute("aria-describedby", heading);
      connectButton.addEventListener("click", () => connect(conn));
      actions.appendChild(connectButton);
      card.appendChild(actions);
    }
  }

  function connectionCard(conn, index) {
    const id = "connection-" + index;
    const card = el("section", "connection-card");
    card.setAttribute("aria-labelledby", id + "-heading");
    card.setAttribute("data-connection", conn.name);
    card.setAttribute("data-status", conn.status);
    const head = el("div", "connection-head");
    const heading = el("h2", "connection-title", conn.displayName);
    heading.id = id + "-heading";
    const badge = el("p", "connection-badge");
    badge.append(el("span", "visually-hidden", "Status: "), STATUS_WORDS[conn.status]);
    head.append(heading, badge);
    card.appendChild(head);
    const dates = cardDates(conn);
    if (dates.childElementCount > 0) {
      card.appendChild(dates);
    }
    card.appendChild(cardPermissions(conn, id));
    cardActions(conn, id, card);
    const item = el("li", "connection-item");
    item.appendChild(card);
    return item;
  }

  function render(connections) {
    els.list.replaceChildren(...connections.map(connectionCard));
    els.empty.hidden = connections.length > 0;
  }

  // ---------------------------------------------------------------- loading

  function setBusy(value) {
    busy = value;
    els.list.setAttribute("aria-busy", value ? "true" : "false");
    for (const node of els.list.querySelectorAll("button")) {
      node.disabled = value;
    }
  }

  // Focus on one card's action button (Connect, or Disconnect with its question closed) after an action.
  function focusCard(name) {
    for (const card of els.list.querySelectorAll(".connection-card")) {
      if (card.getAttribute("data-connection") === name) {
        const action = card.querySelector(".connection-action");
        const confirm = card.querySelector(".connection-confirm");
        if (confirm !== null) {
          confirm.hidden = true;
        }
        action.parentElement.hidden = false;
        action.focus();
        return;
      }
    }
    els.page.focus();
  }

  // Reads the list again and shows it. Returns whether it could.
  async function load() {
    setBusy(true);
    const result = await requestJson("GET", "/api/connections");
    els.loading.hidden = true;
    const list = result.body && Array.isArray(result.body.connections) ? result.body.connections : null;
    if (list === null) {
      say(result.error || TEXT.unexpected, "error");
      els.retryRow.hidden = false;
      setBusy(false);
      return false;
    }
    els.retryRow.hidden = true;
    render(list.map(readConnection).filter((conn) => conn !== null));
    setBusy(false);
    return true;
  }

  // After an action: show its outcome, the list as it is now, and focus on the card acted on.
  async function settle(name, text, kind) {
    say(text, kind);
    if (kind === "error") {
      setBusy(false);
      focusCard(name);
      return;
    }
    if (await load()) {
      say(text, kind); // a failed reload says so instead
      focusCard(name);
    } else {
      els.retry.focus();
    }
  }

  // ---------------------------------------------------------------- actions

  async function connect(conn) {
    if (busy) {
      return;
    }
    setBusy(true);
    say(TEXT.connecting(conn.displayName));
    const result = await requestJson("POST", actionPath(conn.name, "connect"));
    const body = result.body || {};
    if (result.error !== undefined) {
      await settle(conn.name, result.error, "error");
    } else if (body.status === "connected") {
      await settle(conn.name, TEXT.connected(conn.displayName), "ok");
    } else if (body.status === "consent_required" && isTrustedStartUrl(body.start_url)) {
      say(TEXT.leaving(conn.displayName)); // the page stays busy until the browser has left
      window.location.assign(body.start_url);
    } else if (body.status === "consent_required") {
      await settle(conn.name, TEXT.badStartUrl, "error");
    } else {
      await settle(conn.name, TEXT.unexpected, "error");
    }
  }

  async function disconnect(conn) {
    if (busy) {
      return;
    }
    setBusy(true);
    say(TEXT.disconnecting(conn.displayName));
    const result = await requestJson("POST", actionPath(conn.name, "disconnect"));
    if (result.error !== undefined) {
      await settle(conn.name, result.error, "error");
      return;
    }
    const message = result.body.message;
    await settle(conn.name, typeof message === "string" && message ? message : TEXT.disconnected(conn.displayName), "ok");
  }

  async function retry() {
    say("");
    els.retryRow.hidden = true;
    els.loading.hidden = false;
    if (await load()) {
      els.page.focus();
    } else {
      els.retry.focus();
    }
  }

  // ---------------------------------------------------------------- who is signed in, and signing out

  async function showAccount() {
    const result = await requestJson("GET", "/api/session");
    if (result.body && typeof result.body.user === "string" && result.body.user) {
      const email = typeof result.body.email === "string" ? result.body.email : "";
      els.signedInAs.textContent = email ? "Signed in as " + email : "Signed in";
      els.account.hidden = false;
    }
  }

  // As the chat page (app.js): this tab forgets the chat first, then the browser leaves, to the sign-in
  // provider's logout when the server names it, else to /signed-out.
  async function signOut() {
    els.signOut.disabled = true;
    setBusy(true);
    say(TEXT.signingOut);
    for (const key of CHAT_STORAGE_KEYS) {
      try {
        window.sessionStorage.removeItem(key);
      } catch (_err) {
        // storage disabled: nothing stored
      }
    }
    window.location.assign(await signOutLocation());
  }

  async function signOutLocation() {
    const result = await requestJson("POST", "/api/sign-out");
    try {
      const location = result.body && typeof result.body.location === "string" ? new URL(result.body.location) : null;
      if (location !== null && (location.protocol === "https:" || location.protocol === "http:")) {
        return location.href;
      }
    } catch (_err) {
      // not a URL: fall through
    }
    return "/signed-out";
  }

  // ---------------------------------------------------------------- wiring

  els.signOut.addEventListener("click", signOut);
  els.retry.addEventListener("click", retry);
  // Back from the provider through the browser's history, the page may be restored as it was left (busy).
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      say("");
      load();
    }
  });

  showAccount();
  load();
})();
