"""The pages a person sees after the consent redirect: one per outcome, in the person's terms.

No script, no third-party resource, one inline stylesheet allowed by its hash. The only link goes
to the agent UI at a fixed path. AgentCore's own error messages never reach these pages.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from enum import Enum

from starlette.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1b1f24}"
    "main{max-width:34rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.4rem;margin:0 0 .8rem}p{line-height:1.5}"
    "a.button{display:inline-block;margin-top:1rem;padding:.6rem 1.1rem;border-radius:8px;background:#232f3e;color:#fff;text-decoration:none}"
    ".ok h1{color:#116329}.refused h1{color:#8a1c1c}.later h1{color:#7a4b00}"
    "code{font-size:.85rem;color:#57606a}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class Tone(Enum):
    OK = "ok"
    REFUSED = "refused"
    LATER = "later"


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    message: str
    tone: Tone
    action: str = "Return to the agent"


SUCCESS = Page(
    "Authorization complete",
    "You gave the agent access to {provider}. Go back to the agent: it continues the request that was waiting for you.",
    Tone.OK,
)
# The consent completed at AgentCore, but the person disconnected this account after the link was made:
# the connections registry keeps it disconnected, and the agent asks anew before it uses the account.
DISCONNECTED_SINCE = Page(
    "This permission will not be used",
    "You disconnected {provider} after this authorization was started, so the agent will not use what you just allowed. "
    "To let the agent use {provider} again, connect it from the chat or from Connected accounts.",
    Tone.LATER,
)
MALFORMED = Page(
    "This link is not valid",
    "The address is incomplete or has been changed. Nothing was authorized. Go back to the agent and start the authorization again.",
    Tone.REFUSED,
)
CALLBACK_MISDIRECTED = Page(
    "This page is not an OAuth callback",
    "The authorization server sent its answer to this address directly, so nothing was authorized. Whoever runs this agent "
    "must register AgentCore's callback URL at the provider, not this address.",
    Tone.REFUSED,
)
NOT_SIGNED_IN = Page(
    "You are not signed in",
    "Sign in to the agent first, then start the authorization again from the agent.",
    Tone.REFUSED,
    "Go to the agent and sign in",
)
OTHER_USER = Page(
    "This authorization belongs to another account",
    "It was started by a different account than the one signed in here, so it was not completed and nothing was changed. "
    "If you did not start it, you can ignore this page. Otherwise, start it again from your own agent session.",
    Tone.REFUSED,
)
OTHER_BROWSER = Page(
    "Finish in the browser where you started",
    "This authorization was not started in this browser, so it was not completed and nothing was changed. "
    "If you did not start it, you can ignore this page. Otherwise, open the agent in this browser and ask again.",
    Tone.REFUSED,
)
CANCELLED_NOT_YOURS = Page(
    "Someone else started this authorization",
    "This consent was requested from another account's agent session, not yours. It has been cancelled and nothing was "
    "shared with anyone. If someone sent you this link, do not approve links you did not ask for.",
    Tone.REFUSED,
)
CANCELLED_ELSEWHERE = Page(
    "This authorization was cancelled",
    "It came back in a different browser or account than the one that started it, so it was cancelled and nothing was shared. "
    "Go back to the agent in the browser where you use it and ask again: it will give you a new link.",
    Tone.REFUSED,
)
STATE_NOT_ECHOED = Page(
    "We could not confirm where this authorization came from",
    "The address of this page lacks the proof that your browser came back from {provider}, so the authorization was cancelled "
    "and nothing was shared. Go back to the agent and ask again. If this happens every time, tell the people who run this agent.",
    Tone.REFUSED,
)
AGENTCORE_REFUSED = Page(
    "This authorization cannot be completed",
    "The identity service did not accept it: it expired, was already used, or consent was not given yet. It has been cancelled "
    "and nothing was shared. Go back to the agent and ask again: it will give you a new link.",
    Tone.REFUSED,
)
POSSIBLY_SHARED = Page(
    "This authorization belongs to another account",
    "Another account started it, and it was already completed. If you just gave consent at {provider}, that account's agent "
    "may be able to use your access: remove this app's access in your {provider} account settings, and tell the people who "
    "run this agent; the reference below helps them find what happened.",
    Tone.REFUSED,
)
ALREADY_COMPLETE = Page(
    "This authorization is already complete",
    "The agent already has the access you gave it. Go back to the agent: nothing else is needed.",
    Tone.OK,
)
IN_PROGRESS = Page(
    "Your authorization is being completed",
    "Another request is finishing this authorization right now. Reload this page in a few seconds.",
    Tone.LATER,
    "Return to the agent instead",
)
EXPIRED = Page(
    "This authorization has expired or was already used",
    "An authorization link works once, for ten minutes. Go back to the agent and ask again: it will give you a new link.",
    Tone.REFUSED,
)
BUSY = Page(
    "We could not finish right now",
    "The identity service is busy. Your authorization is not lost: reload this page in a few seconds to finish it.",
    Tone.LATER,
    "Return to the agent instead",
)
UNCERTAIN = Page(
    "We could not confirm your authorization",
    "The identity service did not answer in time, and the authorization may or may not have gone through. "
    "Go back to the agent and ask again: if it still needs your consent, it will show a new button.",
    Tone.LATER,
)
SIGN_IN_UNCHECKED = Page(
    "We could not check your sign-in right now",
    "Nothing was authorized yet. Reload this page in a few seconds.",
    Tone.LATER,
)
FAILED = Page(
    "The authorization could not be completed",
    "Nothing was changed. Go back to the agent and try again. If this keeps happening, tell the people who run this agent; "
    "the reference below helps them find what happened.",
    Tone.REFUSED,
)


def render(page: Page, status: int, *, agent_path: str, provider: str | None = None, reference: str | None = None) -> HTMLResponse:
    message = html.escape(page.message.format(provider=provider or "the service"))
    ref = f"<p><code>Reference: {html.escape(reference)}</code></p>" if reference else ""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head>"
        f'<body><main class="{page.tone.value}"><h1>{html.escape(page.title)}</h1><p>{message}</p>{ref}'
        f'<a class="button" href="{html.escape(agent_path)}">{html.escape(page.action)}</a></main></body></html>'
    )
    return HTMLResponse(body, status_code=status)
