// Chat UI for the agent service. Plain JavaScript, no build step, no third-party code.
//
// Served under a strict Content-Security-Policy (script-src 'self', style-src 'self',
// connect-src 'self'): no inline code or styles, no eval, and every piece of text coming
// from the server or the person is inserted with textContent, never as HTML.
//
// Protocol: GET /api/session answers {"user": "<opaque digest>", "email": "<address or null>"} for the
// signed-in person; POST /api/sign-out {} expires the load balancer's session cookies and answers
// {"location": "<the sign-in provider's logout URL>"}, where the page then goes;
// POST /api/chat {message, history} answers with server-sent events over the response body
// (message, tool_call, tool_result, authorization_required, authorization_declined, disconnect_requested,
// error, done).
// A request resent after a consent round trip carries "after_consent": the start link's flow token, so
// the agent can tell a declined consent ("nothing was shared": Try again or Cancel) from a finished one.
// disconnect_requested {provider, display_name} follows the disconnect_account tool, which disconnects
// nothing: the person confirms on a card, which calls POST /api/connections/<provider>/disconnect {} as the
// connected accounts page (connections.js) does; it answers {"status": "disconnected", "message": <a sentence
// to show>}, errors {"error": <code>, "message": <a sentence to show>}.
//
// sessionStorage belongs to the tab, not to the person: someone else may sign in in the same tab.
// So the stored conversation and pending request are kept for one person ("agent.user"), and are
// neither shown nor replayed before GET /api/session has said who is signed in now.
"use strict";

(function () {
  const USER_KEY = "agent.user";
  const HISTORY_KEY = "agent.history";
  const PENDING_KEY = "agent.pending";
  const PENDING_MAX_AGE_MS = 10 * 60 * 1000;
  const MAX_MESSAGE_CHARS = 4000;
  const MAX_HISTORY_SENT = 20;
  const MAX_HISTORY_KEPT = 200;
  const START_URL_PREFIX = "/oauth2/start?flow=";
  const PROVIDER_PATTERN = /^[a-z][a-z0-9-]{0,19}$/; // a configured account's name, as in connections.js
  // Abort a reply that sends nothing at all for this long.
  const IDLE_TIMEOUT_MS = 120 * 1000;

  const TEXT = {
    sessionEnded: "Your session has ended \u2014 reload the page to sign in again.",
    network: "Could not reach the agent. Check your connection and try again.",
    interrupted: "The reply was interrupted. Please try again.",
    timeout: "The agent took too long to answer. Please try again.",
    unexpected: "Something went wrong. Please try again.",
    badAuthLink: "The agent asked for permission with a link this page does not trust, so it was not shown.",
    resuming: "Continuing where you left off\u2026",
    working: "The agent is working\u2026",
    tooLong: "Messages can be at most " + MAX_MESSAGE_CHARS + " characters.",
    signingOut: "Signing out\u2026",
    disconnectNote: "The agent will not use this account until you connect it again.",
    keptConnected: "Kept connected. Nothing was changed.",
  };

  // ---------------------------------------------------------------- storage

  function readJson(key) {
    try {
      const raw = window.sessionStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch (_err) {
      return null;
    }
  }

  function writeJson(key, value) {
    try {
      window.sessionStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch (_err) {
      return false; // storage full or disabled: the chat still works, it just won't survive a reload
    }
  }

  function removeKey(key) {
    try {
      window.sessionStorage.removeItem(key);
    } catch (_err) {
      // nothing to do
    }
  }

  // Lengths as the server counts them: Unicode code points, not UTF-16 code units.
  function codePointLength(text) {
    let count = 0;
    for (const _ch of text) {
      count += 1;
    }
    return count;
  }

  // At most `max` code points, never ending in half of a surrogate pair.
  function clip(text, max) {
    if (text.length <= max) {
      return text; // fewer code units than the limit: fewer code points too
    }
    return Array.from(text).slice(0, max).join("");
  }

  function isBlank(text) {
    return text.trim().length === 0;
  }

  function isTurn(value) {
    return (
      value !== null &&
      typeof value === "object" &&
      (value.role === "user" || value.role === "assistant") &&
      typeof value.text === "string"
    );
  }

  function loadHistory() {
    const stored = readJson(HISTORY_KEY);
    if (!Array.isArray(stored)) {
      return [];
    }
    return stored.filter(isTurn).map((t) => ({ role: t.role, text: t.text }));
  }

  function saveHistory() {
    if (history.length > MAX_HISTORY_KEPT) {
      history.splice(0, history.length - MAX_HISTORY_KEPT);
    }
    if (storageOwner !== null) {
      writeJson(HISTORY_KEY, history); // only once claimed for the person signed in
    }
  }

  // What the server accepts: the last 20 turns, each text 1..4000 code points (and not blank),
  // only role and text.
  function historyForRequest(turns) {
    return turns
      .filter((t) => !isBlank(t.text))
      .slice(-MAX_HISTORY_SENT)
      .map((t) => ({ role: t.role, text: clip(t.text, MAX_MESSAGE_CHARS) }));
  }

  // Makes the stored conversation this person's: another person's is dropped, never shown or sent.
  // Returns whether storage now belongs to them (it may be disabled or full).
  function claimStorage(user) {
    if (readJson(USER_KEY) === user) {
      return true;
    }
    removeKey(HISTORY_KEY);
    removeKey(PENDING_KEY);
    removeKey(USER_KEY);
    return writeJson(USER_KEY, user);
  }

  function takePendingRequest(user) {
    const pending = readJson(PENDING_KEY);
    removeKey(PENDING_KEY);
    if (pending === null || typeof pending !== "object") {
      return null;
    }
    const age = Date.now() - pending.saved_at;
    if (
      pending.user !== user ||
      typeof pending.message !== "string" ||
      isBlank(pending.message) ||
      codePointLength(pending.message) > MAX_MESSAGE_CHARS ||
      !Array.isArray(pending.history) ||
      !pending.history.every(isTurn) ||
      typeof pending.saved_at !== "number" ||
      !(age >= 0 && age < PENDING_MAX_AGE_MS)
    ) {
      return null;
    }
    const resumed = { message: pending.message, history: historyForRequest(pending.history) };
    if (typeof pending.after_consent === "string" && pending.after_consent.length > 0 && pending.after_consent.length <= 4096) {
      resumed.after_consent = pending.after_consent;
    }
    return resumed;
  }

  // The stored conversation cut back to the moment the pending request was sent (what came
  // after it, such as the permission prompt, is replaced by the new reply). If the stored one
  // does not contain that request, the request's own history is the best we have.
  function conversationAt(pending) {
    const stored = loadHistory();
    for (let i = stored.length - 1; i >= 0; i -= 1) {
      if (stored[i].role === "user" && stored[i].text === pending.message) {
        return stored.slice(0, i + 1);
      }
    }
    return pending.history.concat([{ role: "user", text: pending.message }]);
  }

  // ---------------------------------------------------------------- elements

  const els = {
    conversation: document.getElementById("conversation"),
    messages: document.getElementById("messages"),
    emptyState: document.getElementById("empty-state"),
    status: document.getElementById("status"),
    form: document.getElementById("composer"),
    input: document.getElementById("message-input"),
    send: document.getElementById("send"),
    newConversation: document.getElementById("new-conversation"),
    account: document.getElementById("account"),
    signedInAs: document.getElementById("signed-in-as"),
    signOut: document.getElementById("sign-out"),
  };

  // Nothing stored is used before GET /api/session has answered: until then, who is signed in is unknown.
  let currentUser = null;
  let storageOwner = null; // the person the stored conversation belongs to, once claimed
  let history = [];
  let busy = false;
  let currentAbort = null;
  let authCounter = 0;

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

  function scrollToEnd() {
    els.conversation.scrollTop = els.conversation.scrollHeight;
  }

  function appendItem(item) {
    els.messages.appendChild(item);
    els.emptyState.hidden = true;
    scrollToEnd();
    return item;
  }

  function appendBubble(kind, text) {
    const item = el("li", "entry entry-" + kind);
    const speaker = { user: "You", assistant: "Agent", error: "Error", notice: "Note" }[kind];
    item.appendChild(el("span", "visually-hidden", speaker + ": "));
    const bubble = el("p", "bubble bubble-" + kind, text);
    item.appendChild(bubble);
    return appendItem(item);
  }

  function showError(text) {
    const item = appendBubble("error", text);
    item.setAttribute("data-kind", "error");
    return item;
  }

  function showNotice(text) {
    return appendBubble("notice", text);
  }

  function renderHistory() {
    els.messages.replaceChildren();
    for (const turn of history) {
      appendBubble(turn.role, turn.text);
    }
    els.emptyState.hidden = history.length > 0;
  }

  function setBusy(value, statusText) {
    busy = value;
    els.input.disabled = value;
    els.send.disabled = value;
    els.status.textContent = value ? (statusText === undefined ? TEXT.working : statusText) : "";
    els.form.classList.toggle("is-busy", value);
  }

  // ---------------------------------------------------------------- tool lines

  function toolLine(state, data) {
    const id = typeof data.id === "string" ? data.id : "";
    const name = typeof data.name === "string" && data.name ? data.name : "a tool";
    let line = id ? state.tools.get(id) : undefined;
    if (!line) {
      const item = el("li", "entry entry-tool");
      const details = el("details", "tool");
      const summary = el("summary", "tool-summary");
      const label = el("span", "tool-label", "Using " + name + "\u2026");
      summary.appendChild(label);
      details.appendChild(summary);
      const body = el("div", "tool-body");
      details.appendChild(body);
      item.appendChild(details);
      item.setAttribute("data-tool-id", id);
      item.setAttribute("data-state", "running");
      line = { item, label, body, name };
      if (id) {
        state.tools.set(id, line);
      }
      appendItem(item);
    }
    return line;
  }

  function onToolCall(state, data) {
    const line = toolLine(state, data);
    if (data.input !== undefined) {
      let shown;
      try {
        shown = JSON.stringify(data.input, null, 2);
      } catch (_err) {
        shown = String(data.input);
      }
      line.body.appendChild(el("p", "tool-caption", "Input"));
      line.body.appendChild(el("pre", "tool-detail", shown));
    }
  }

  function onToolResult(state, data) {
    const line = toolLine(state, data);
    const ok = data.ok === true;
    line.item.setAttribute("data-state", ok ? "ok" : "failed");
    line.label.textContent = ok ? "Used " + line.name : line.name + " did not succeed";
    if (typeof data.summary === "string" && data.summary) {
      line.body.appendChild(el("p", "tool-caption", "Result"));
      line.body.appendChild(el("p", "tool-detail", data.summary));
    }
  }

  // A tool still "using" when the turn ends did not finish (for example, it needs permission first).
  function stopRunningTools(state) {
    for (const line of state.tools.values()) {
      if (line.item.getAttribute("data-state") === "running") {
        line.item.setAttribute("data-state", "stopped");
        const why = state.declined ? " was not allowed" : state.awaitingPermission ? " is waiting for your permission" : " did not finish";
        line.label.textContent = line.name + why;
      }
    }
  }

  // ---------------------------------------------------------------- authorization

  function isTrustedStartUrl(value) {
    if (typeof value !== "string" || !value.startsWith(START_URL_PREFIX)) {
      return false;
    }
    // Belt and braces: the resolved URL must stay on this origin and on this path.
    try {
      const url = new URL(value, window.location.origin);
      return url.origin === window.location.origin && url.pathname === "/oauth2/start";
    } catch (_err) {
      return false;
    }
  }

  function flowOf(startUrl) {
    try {
      return new URL(startUrl, window.location.origin).searchParams.get("flow") || undefined;
    } catch (_err) {
      return undefined;
    }
  }

  // The person came back from a consent that ended without a grant: say so, and let them choose.
  function onAuthorizationDeclined(state, data) {
    const displayName = (typeof data.display_name === "string" && data.display_name) || "the service";
    const message =
      (typeof data.message === "string" && data.message) ||
      "You did not give the agent permission to use " + displayName + ", so nothing was shared with it.";
    const item = el("li", "entry entry-auth");
    const card = el("section", "auth-card auth-declined");
    const headingId = "auth-heading-" + ++authCounter;
    const heading = el("h3", "auth-title", "Permission not given");
    heading.id = headingId;
    card.setAttribute("aria-labelledby", headingId);
    card.appendChild(heading);
    card.appendChild(el("p", "auth-text", message));
    const actions = el("div", "auth-actions");
    const retry = el("button", "button button-primary", "Try again");
    retry.type = "button";
    const cancel = el("button", "button button-secondary", "Cancel");
    cancel.type = "button";
    const request = { message: state.request.message, history: state.request.history };
    retry.addEventListener("click", () => {
      retry.disabled = cancel.disabled = true;
      sendRequest(request); // the same request, as new: the agent asks for permission again
    });
    cancel.addEventListener("click", () => {
      retry.disabled = cancel.disabled = true;
      showNotice("Cancelled. Nothing was shared with " + displayName + ".");
      els.input.focus();
    });
    actions.appendChild(retry);
    actions.appendChild(cancel);
    card.appendChild(actions);
    item.appendChild(card);
    appendItem(item);
    state.focusAfter = retry;
  }

  function onAuthorizationRequired(state, data) {
    const startUrl = data.start_url;
    const displayName =
      (typeof data.display_name === "string" && data.display_name) ||
      (typeof data.provider === "string" && data.provider) ||
      "A service";
    if (!isTrustedStartUrl(startUrl)) {
      showError(TEXT.badAuthLink);
      return;
    }

    const item = el("li", "entry entry-auth");
    const card = el("section", "auth-card");
    const headingId = "auth-heading-" + ++authCounter;
    const heading = el("h3", "auth-title", displayName + " needs your permission");
    heading.id = headingId;
    card.setAttribute("aria-labelledby", headingId);
    card.appendChild(heading);

    const scopes = Array.isArray(data.scopes) ? data.scopes.filter((s) => typeof s === "string" && s) : [];
    if (scopes.length > 0) {
      card.appendChild(el("p", "auth-text", "The agent asks to use " + displayName + " on your behalf with these permissions:"));
      const list = el("ul", "auth-scopes");
      for (const scope of scopes) {
        list.appendChild(el("li", "auth-scope", scope));
      }
      card.appendChild(list);
    } else {
      card.appendChild(el("p", "auth-text", "The agent asks to use " + displayName + " on your behalf."));
    }
    card.appendChild(
      el("p", "auth-text auth-note", "You will be taken to " + displayName + " to decide, then brought back here and your request will continue."),
    );

    const button = el("button", "button button-primary auth-button", "Authorize " + displayName);
    button.type = "button";
    const request = state.request;
    const user = currentUser;
    button.addEventListener("click", () => {
      const saved =
        user !== null &&
        storageOwner === user &&
        writeJson(PENDING_KEY, {
          user,
          message: request.message,
          history: request.history,
          after_consent: flowOf(startUrl),
          saved_at: Date.now(),
        });
      if (!saved) {
        showNotice("This browser did not let the page remember your request; send it again after you come back.");
      }
      window.location.assign(startUrl);
    });
    card.appendChild(button);
    item.appendChild(card);
    appendItem(item);
    state.focusAfter = button;
  }

  // ---------------------------------------------------------------- disconnecting an account

  // {message} once the server has recorded the disconnect (null when it sent no sentence), else {error}
  // with the sentence to show. Sent like sign-out: an empty JSON object, which a cross-site form cannot send.
  async function requestDisconnect(provider) {
    let response;
    try {
      response = await fetch("/api/connections/" + encodeURIComponent(provider) + "/disconnect", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: "{}",
        cache: "no-store",
        redirect: "manual", // an expired sign-in is a redirect to the identity provider
      });
    } catch (_err) {
      return { error: TEXT.network };
    }
    if (response.type === "opaqueredirect") {
      return { error: TEXT.sessionEnded };
    }
    if (!response.ok) {
      return { error: await readErrorMessage(response) };
    }
    try {
      const body = await response.json();
      if (body && body.status === "disconnected") {
        return { message: typeof body.message === "string" && body.message ? body.message : null };
      }
    } catch (_err) {
      // not JSON
    }
    return { error: TEXT.unexpected };
  }

  // The agent's tool call disconnected nothing: the person decides here. "Disconnect" asks the server,
  // "Keep connected" asks nothing. Either way the card then says what happened, in a status line.
  function onDisconnectRequested(state, data) {
    const provider = data.provider;
    if (typeof provider !== "string" || !PROVIDER_PATTERN.test(provider)) {
      showError(TEXT.unexpected); // not an account this page can name in a request
      return;
    }
    const displayName = (typeof data.display_name === "string" && data.display_name) || provider;
    const item = el("li", "entry entry-auth");
    const card = el("section", "auth-card disconnect-card");
    const headingId = "auth-heading-" + ++authCounter;
    const heading = el("h3", "auth-title", "Disconnect " + displayName + "?");
    heading.id = headingId;
    card.setAttribute("aria-labelledby", headingId);
    card.appendChild(heading);
    const note = el("p", "auth-text", TEXT.disconnectNote);
    card.appendChild(note);
    // In the page from the start, so that what it says later is announced.
    const outcome = el("p", "auth-text card-outcome");
    outcome.setAttribute("role", "status");
    card.appendChild(outcome);

    const actions = el("div", "auth-actions");
    const disconnect = el("button", "button button-danger", "Disconnect");
    disconnect.type = "button";
    const keep = el("button", "button button-secondary", "Keep connected");
    keep.type = "button";
    actions.appendChild(disconnect);
    actions.appendChild(keep);
    card.appendChild(actions);

    const more = el("p", "auth-text auth-note");
    const link = el("a", "card-link", "Connected accounts");
    link.href = "/connections";
    more.appendChild(link);
    card.appendChild(more);

    // The question is answered: only what happened stays. Focus on the card (or on nothing in particular,
    // as after a click on a disabled button) goes on to the message box; focus elsewhere is left alone.
    const settle = (message) => {
      const active = document.activeElement;
      const hadFocus = card.contains(active) || active === document.body || active === els.conversation;
      note.remove();
      actions.remove();
      outcome.setAttribute("data-kind", "ok");
      outcome.textContent = message;
      if (hadFocus) {
        (els.input.disabled ? link : els.input).focus();
      }
    };
    let running = false;
    disconnect.addEventListener("click", async () => {
      if (running) {
        return;
      }
      running = true;
      disconnect.disabled = keep.disabled = true;
      outcome.removeAttribute("data-kind");
      outcome.textContent = "Disconnecting " + displayName + "\u2026";
      const result = await requestDisconnect(provider);
      running = false;
      if (result.error !== undefined) {
        outcome.setAttribute("data-kind", "error");
        outcome.textContent = result.error;
        disconnect.disabled = keep.disabled = false;
        disconnect.focus();
        return;
      }
      settle(result.message || "Disconnected " + displayName + ".");
    });
    keep.addEventListener("click", () => {
      if (!running) {
        settle(TEXT.keptConnected);
      }
    });

    item.appendChild(card);
    appendItem(item);
    state.focusAfter = keep; // the choice that changes nothing, as on the connected accounts page
  }

  // ---------------------------------------------------------------- server-sent events

  // Incremental parser for the text/event-stream format: lines end in CRLF, LF or CR; an
  // empty line dispatches the event; "data" lines accumulate; lines starting with ":" are comments.
  function createEventParser(onEvent) {
    let buffer = "";
    let eventType = "";
    let dataLines = [];

    function dispatch() {
      if (dataLines.length > 0 || eventType) {
        onEvent(eventType || "message", dataLines.join("\n"));
      }
      eventType = "";
      dataLines = [];
    }

    function processLine(line) {
      if (line === "") {
        dispatch();
        return;
      }
      if (line.startsWith(":")) {
        return;
      }
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) {
        value = value.slice(1);
      }
      if (field === "event") {
        eventType = value;
      } else if (field === "data") {
        dataLines.push(value);
      }
    }

    return {
      push(chunk) {
        buffer += chunk;
        for (;;) {
          const match = /\r\n|\n|\r/.exec(buffer);
          if (!match) {
            break;
          }
          // A lone CR at the end may be the first half of a CRLF split across chunks.
          if (match[0] === "\r" && match.index === buffer.length - 1) {
            break;
          }
          processLine(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
      },
      end() {
        if (buffer !== "") {
          processLine(buffer.replace(/\r$/, ""));
          buffer = "";
        }
        // An event without its terminating blank line is incomplete and is dropped (as browsers do).
      },
    };
  }

  function handleEvent(state, type, rawData) {
    let data;
    try {
      data = rawData === "" ? {} : JSON.parse(rawData);
    } catch (_err) {
      return; // not ours to guess at
    }
    if (data === null || typeof data !== "object") {
      data = {};
    }
    switch (type) {
      case "message":
        if (typeof data.text === "string" && data.text) {
          appendBubble("assistant", data.text);
          history.push({ role: "assistant", text: data.text });
          saveHistory();
        }
        break;
      case "tool_call":
        onToolCall(state, data);
        break;
      case "tool_result":
        onToolResult(state, data);
        break;
      case "authorization_required":
        state.awaitingPermission = true;
        onAuthorizationRequired(state, data);
        break;
      case "authorization_declined":
        state.declined = true;
        onAuthorizationDeclined(state, data);
        break;
      case "disconnect_requested":
        onDisconnectRequested(state, data);
        break;
      case "error":
        showError(typeof data.message === "string" && data.message ? data.message : TEXT.unexpected);
        break;
      case "done":
        state.done = true;
        break;
      default:
        break; // unknown event types are ignored, so the server can add some
    }
  }

  async function readErrorMessage(response) {
    if (response.status === 401) {
      return TEXT.sessionEnded;
    }
    try {
      const body = await response.json();
      if (body && typeof body.message === "string" && body.message) {
        return body.message;
      }
    } catch (_err) {
      // not JSON
    }
    return TEXT.unexpected + " (HTTP " + response.status + ")";
  }

  // ---------------------------------------------------------------- sending

  function chatFetchOptions(request, abort) {
    const body = { message: request.message, history: request.history };
    if (request.after_consent) {
      body.after_consent = request.after_consent;
    }
    return {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(body),
      cache: "no-store",
      // The load balancer answers an expired sign-in with a redirect to the identity
      // provider; following it from script cannot work, so treat it as "signed out".
      redirect: "manual",
      signal: abort.signal,
    };
  }

  async function sendRequest(request) {
    // focusAfter: the card's button to focus when the turn ends (else the message box).
    const state = { request, tools: new Map(), done: false, focusAfter: null, awaitingPermission: false, declined: false };
    const abort = new AbortController();
    currentAbort = abort;
    let idleTimer = 0;
    let timedOut = false;
    const armIdleTimer = () => {
      window.clearTimeout(idleTimer);
      idleTimer = window.setTimeout(() => {
        timedOut = true;
        abort.abort();
      }, IDLE_TIMEOUT_MS);
    };

    setBusy(true);
    armIdleTimer();
    try {
      let response;
      try {
        response = await fetch("/api/chat", chatFetchOptions(request, abort));
      } catch (_err) {
        if (!abort.signal.aborted || timedOut) {
          showError(timedOut ? TEXT.timeout : TEXT.network);
        }
        return;
      }

      if (response.type === "opaqueredirect") {
        showError(TEXT.sessionEnded);
        return;
      }
      if (!response.ok) {
        showError(await readErrorMessage(response));
        return;
      }
      const contentType = response.headers.get("content-type") || "";
      if (!contentType.startsWith("text/event-stream") || !response.body) {
        showError(TEXT.unexpected);
        return;
      }

      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = createEventParser((type, data) => {
        if (!state.done) {
          handleEvent(state, type, data);
        }
      });
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            parser.push(decoder.decode());
            parser.end();
            break;
          }
          armIdleTimer();
          parser.push(decoder.decode(value, { stream: true }));
          if (state.done) {
            reader.cancel().catch(() => {});
            break;
          }
        }
      } catch (_err) {
        if (abort.signal.aborted && !timedOut) {
          return; // the person started a new conversation
        }
        showError(timedOut ? TEXT.timeout : TEXT.interrupted);
        return;
      }
      if (!state.done) {
        showError(TEXT.interrupted);
      }
    } finally {
      window.clearTimeout(idleTimer);
      stopRunningTools(state);
      if (currentAbort === abort) {
        currentAbort = null;
        setBusy(false);
        if (state.focusAfter && state.focusAfter.isConnected && !state.focusAfter.disabled) {
          state.focusAfter.focus();
        } else {
          els.input.focus();
        }
      }
    }
  }

  // ---------------------------------------------------------------- who is signed in

  // {user} for the signed-in person, or {error} with the text to show.
  async function fetchSessionUser() {
    let response;
    try {
      response = await fetch("/api/session", {
        method: "GET",
        credentials: "same-origin",
        headers: { accept: "application/json" },
        cache: "no-store",
        redirect: "manual", // an expired sign-in is a redirect to the identity provider
      });
    } catch (_err) {
      return { error: TEXT.network };
    }
    if (response.type === "opaqueredirect") {
      return { error: TEXT.sessionEnded };
    }
    if (!response.ok) {
      return { error: await readErrorMessage(response) };
    }
    try {
      const body = await response.json();
      if (body && typeof body.user === "string" && body.user) {
        return { user: body.user, email: typeof body.email === "string" ? body.email : "" };
      }
    } catch (_err) {
      // not JSON
    }
    return { error: TEXT.unexpected };
  }

  // Learns who is signed in and shows their stored conversation (only theirs). Returns the
  // pending request to resume, null when there is none, or false when the check failed.
  async function identify() {
    const result = await fetchSessionUser();
    if (result.user === undefined) {
      showError(result.error);
      return false;
    }
    currentUser = result.user;
    showAccount(result.email);
    storageOwner = claimStorage(result.user) ? result.user : null;
    history = storageOwner === null ? [] : loadHistory();
    renderHistory();
    return storageOwner === null ? null : takePendingRequest(result.user);
  }

  function showAccount(email) {
    els.signedInAs.textContent = email ? "Signed in as " + email : "Signed in";
    els.account.hidden = false;
  }

  // Ends the session in this browser: the server expires the load balancer's cookies, then the page
  // goes to the sign-in provider's logout, which ends its own session and comes back to /signed-out.
  // This tab's stored conversation is dropped first: the next person to sign in here must not see it.
  // Whatever the answer, this tab forgets the conversation first, and the browser leaves: to the provider's
  // logout when the server names it, else to /signed-out, which expires the load balancer's cookies too.
  async function signOut() {
    if (currentAbort) {
      currentAbort.abort();
      currentAbort = null;
    }
    els.signOut.disabled = true;
    setBusy(true, TEXT.signingOut);
    removeKey(HISTORY_KEY);
    removeKey(PENDING_KEY);
    removeKey(USER_KEY);
    window.location.assign(await signOutLocation());
  }

  async function signOutLocation() {
    try {
      const response = await fetch("/api/sign-out", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: "{}",
        cache: "no-store",
        redirect: "manual",
      });
      const body = response.ok ? await response.json() : null;
      const location = body && typeof body.location === "string" ? new URL(body.location) : null;
      if (location !== null && (location.protocol === "https:" || location.protocol === "http:")) {
        return location.href;
      }
    } catch (_err) {
      // unreachable, or not JSON: fall through
    }
    return "/signed-out";
  }

  // ---------------------------------------------------------------- composing

  async function submitMessage() {
    if (busy) {
      return;
    }
    const message = els.input.value.trim();
    if (!message) {
      els.input.focus();
      return;
    }
    if (codePointLength(message) > MAX_MESSAGE_CHARS) {
      els.status.textContent = TEXT.tooLong;
      return;
    }
    if (currentUser === null) {
      // The check at start-up failed (signed out, or the service was unreachable): try again first.
      setBusy(true, "");
      const identified = await identify();
      setBusy(false);
      if (identified === false) {
        els.input.focus();
        return;
      }
      // A request that waited for consent is not replayed over a new message.
    }
    const request = { message, history: historyForRequest(history) };
    els.input.value = "";
    appendBubble("user", message);
    history.push({ role: "user", text: message });
    saveHistory();
    sendRequest(request);
  }

  function newConversation() {
    if (currentAbort) {
      const abort = currentAbort;
      currentAbort = null;
      abort.abort();
      setBusy(false);
    }
    history = [];
    removeKey(HISTORY_KEY);
    removeKey(PENDING_KEY);
    renderHistory();
    els.status.textContent = "";
    els.input.value = "";
    els.input.focus();
  }

  // ---------------------------------------------------------------- wiring

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });

  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });

  els.newConversation.addEventListener("click", newConversation);
  els.signOut.addEventListener("click", signOut);

  async function start() {
    setBusy(true, "");
    const pending = await identify();
    setBusy(false);
    if (pending) {
      // Back from the consent round trip: the conversation as it was when the request was sent,
      // then the same request again. The server now finds the token in the vault.
      history = conversationAt(pending);
      saveHistory();
      renderHistory();
      showNotice(TEXT.resuming);
      sendRequest(pending);
    } else {
      els.input.focus();
    }
  }

  start();
})();
