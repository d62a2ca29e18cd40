"""Revoking a grant at the provider, on disconnect, where the provider lets the token holder do it alone.

The agent holds a person's access token only for the length of a call, and never the OAuth client's
secret (AgentCore reads that; the agent's role cannot). So revocation is offered where the token alone
suffices (read 2026-12-07):

| kind   | how                                                                                     |
|--------|-----------------------------------------------------------------------------------------|
| google | `POST https://oauth2.googleapis.com/revoke`, form `token=<access token>` ("Using OAuth 2.0 to Access Google APIs", Revoking a token: revoking an access token also revokes its refresh token) |
| slack  | `POST https://slack.com/api/auth.revoke` with the token as bearer (Slack API method `auth.revoke`) |

Elsewhere it is not offered, and the person is told where to remove the app's access themselves: GitHub's
grant API (`DELETE /applications/{client_id}/grant`) and RFC 7009 endpoints (Cognito's `/oauth2/revoke`,
the demo's, custom OIDC) require the client's own credentials (RFC 7009 section 2.1), and Cognito revokes
refresh tokens only; Microsoft's identity platform has no revocation endpoint for a consent.

Whatever the provider does, the disconnect is already recorded and no task uses the old grant again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

from services.agent.settings import ProviderSpec

Outcome = Literal["revoked", "not_offered", "nothing_stored", "failed"]
REVOCATION_URLS = {"google": "https://oauth2.googleapis.com/revoke", "slack": "https://slack.com/api/auth.revoke"}
REVOKE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Revocation:
    outcome: Outcome

    def message(self, name: str) -> str:
        """What the person reads after a disconnect."""
        done = f"Disconnected. The agent will not use your {name} account again unless you connect it again."
        if self.outcome == "revoked":
            return f"{done} {name} has also withdrawn the permission it gave."
        if self.outcome == "nothing_stored":
            return done
        if self.outcome == "failed":
            return f"{done} {name} could not be asked to withdraw the permission: remove this app in your {name} account settings."
        return f"{done} To remove the permission at {name} as well, remove this app in your {name} account settings."


def revocation_url(provider: ProviderSpec) -> str | None:
    """Where this provider revokes a token on the token holder's request, if it does."""
    return provider.revocation_url or REVOCATION_URLS.get(provider.kind)


async def revoke(http: httpx.AsyncClient, provider: ProviderSpec, token: str) -> Revocation:
    """Ask the provider to revoke `token` (and the grant behind it). Never raises; never logs the token."""
    url = revocation_url(provider)
    if url is None:
        return Revocation("not_offered")
    try:
        if provider.kind == "slack":
            response = await http.post(url, headers={"authorization": f"Bearer {token}"}, timeout=REVOKE_TIMEOUT_S)
            ok = response.status_code == 200 and response.json().get("ok") is True
        else:
            response = await http.post(url, data={"token": token}, timeout=REVOKE_TIMEOUT_S)
            ok = response.status_code == 200
    except (httpx.HTTPError, ValueError, AttributeError):
        return Revocation("failed")
    return Revocation("revoked" if ok else "failed")
