"""Checks made with plain HTTP requests, without a browser: what the load balancer answers before
anyone signs in, and whether the provider accepts AgentCore's callback URL for the agent's client.

Redirects are never followed: each check looks at the first answer, the one that decides.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from deploy.verify.report import Result, failed, passed, skipped
from deploy.verify.target import ConsentClient, Target

TIMEOUT_S = 15.0
# A made-up identity: a JWT for someone else, in the headers the ALB adds after sign-in.
FORGED_SUB = "verify-forged-user"


def http_client() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=TIMEOUT_S, trust_env=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged_identity_headers() -> dict[str, str]:
    """`x-amzn-oidc-*` as a client could make them up: a well-formed JWT for another user, badly signed."""
    header = {"alg": "ES256", "kid": "verify-forged", "typ": "JWT", "signer": "arn:aws:elasticloadbalancing:forged"}
    claims = {"sub": FORGED_SUB, "email": "forged@example.com", "exp": int(time.time()) + 600, "iss": "https://forged.example.com"}
    token = ".".join((_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(secrets.token_bytes(64))))
    return {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": FORGED_SUB, "x-amzn-oidc-accesstoken": token}


def discover(issuer_or_document: str) -> dict[str, Any]:
    """An OpenID Provider's discovery document, from its issuer or the document's own URL."""
    url = issuer_or_document
    if not url.endswith("/.well-known/openid-configuration"):
        url = url.rstrip("/") + "/.well-known/openid-configuration"
    with http_client() as client:
        response = client.get(url)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def health(target: Target) -> Result:
    name = "health"
    try:
        with http_client() as client:
            response = client.get(f"{target.url}/health")
    except httpx.HTTPError as error:
        return failed(name, f"GET /health got no answer: {type(error).__name__}: {error}")
    if response.status_code != 200:
        return failed(name, f"GET /health answered {response.status_code}, expected 200 (the one route without sign-in)")
    return passed(name, "GET /health answered 200 without sign-in")


def _sign_in_endpoint(target: Target) -> str | None:
    if target.sign_in_issuer is None:
        return None
    return str(discover(target.sign_in_issuer)["authorization_endpoint"])


def _goes_to_sign_in(response: httpx.Response, endpoint: str | None) -> str | None:
    """None when the answer sends the browser to the sign-in issuer's authorization endpoint, else why not."""
    location = response.headers.get("location", "")
    if response.status_code not in (302, 303, 307):
        return f"answered {response.status_code}, expected a redirect to sign-in"
    if endpoint is not None and not location.startswith(endpoint + "?"):
        return f"redirected to {urlsplit(location).netloc}{urlsplit(location).path}, not the sign-in issuer's {endpoint}"
    if endpoint is None and not urlsplit(location).path.endswith("/authorize"):
        return f"redirected to {urlsplit(location).path or location!r}, not an authorization endpoint"
    return None


def anonymous_page(target: Target) -> Result:
    name = "anonymous_page_signs_in"
    try:
        endpoint = _sign_in_endpoint(target)
        with http_client() as client:
            response = client.get(f"{target.url}/")
    except (httpx.HTTPError, KeyError, ValueError) as error:
        return failed(name, f"could not ask: {type(error).__name__}: {error}")
    problem = _goes_to_sign_in(response, endpoint)
    if problem:
        return failed(name, f"GET / without a session {problem}")
    where = endpoint or "an /authorize endpoint (sign-in issuer not given: its host was not checked)"
    return passed(name, f"GET / without a session: {response.status_code} to {where}")


def anonymous_api(target: Target) -> Result:
    name = "anonymous_api_401"
    try:
        with http_client() as client:
            response = client.get(f"{target.url}/api/session")
    except httpx.HTTPError as error:
        return failed(name, f"GET /api/session got no answer: {type(error).__name__}: {error}")
    if response.status_code != 401:
        return failed(name, f"GET /api/session without a session answered {response.status_code}, expected 401")
    return passed(name, "GET /api/session without a session: 401")


def forged_headers_anonymous(target: Target) -> Result:
    name = "forged_headers_anonymous"
    forged = forged_identity_headers()
    try:
        endpoint = _sign_in_endpoint(target)
        with http_client() as client:
            page = client.get(f"{target.url}/", headers=forged)
            api = client.get(f"{target.url}/api/session", headers=forged)
    except (httpx.HTTPError, KeyError, ValueError) as error:
        return failed(name, f"could not ask: {type(error).__name__}: {error}")
    problem = _goes_to_sign_in(page, endpoint)
    if problem:
        return failed(name, f"GET / with forged x-amzn-oidc-* headers {problem}: the headers may have been believed")
    if api.status_code != 401:
        return failed(name, f"GET /api/session with forged x-amzn-oidc-* headers answered {api.status_code}, expected 401")
    return passed(name, "forged x-amzn-oidc-data/-identity/-accesstoken without a session: still sent to sign-in, API 401")


def authorization_request(consent: ConsentClient, endpoint: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    query = {
        "client_id": consent.client_id,
        "redirect_uri": consent.callback_url,
        "response_type": "code",
        "scope": consent.scope,
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{endpoint}?{urlencode(query)}"


def page_text(html: str, limit: int = 160) -> str:
    """What a person reads on an error page: an element marked as an alert or error, else the text."""
    marked = re.search(r"<(\w+)[^>]*(?:role=\"alert\"|class=\"[^\"]*error[^\"]*\")[^>]*>(.*?)</\1>", html, re.DOTALL)
    text = marked.group(2) if marked else re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", text)).split())[:limit]


def _refusal(response: httpx.Response, callback_url: str) -> str | None:
    """None when the provider accepted the request (a redirect to its own sign-in), else what it said."""
    location = response.headers.get("location", "")
    if response.status_code not in (302, 303, 307):
        return f"answered {response.status_code} instead of its sign-in page: {page_text(response.text)!r}"
    if "error" in urlsplit(location).query or "/error" in urlsplit(location).path:
        return f"redirected to an error: {urlsplit(location).path}?{urlsplit(location).query[:160]}"
    if location.startswith(callback_url):
        return "sent the browser straight back to the callback, not to its sign-in"
    return None


def callback_registered(target: Target) -> Result:
    name = "callback_url_registered"
    consent = target.consent
    if consent is None:
        return skipped(name, target.why_missing("consent"))
    if not consent.authorization_endpoint and not consent.discovery_url:
        # GitHub, Google, Microsoft, Slack: AgentCore knows their endpoints, and some check redirect_uri only
        # after their own sign-in, so an unauthenticated request proves nothing either way.
        return skipped(name, "a built-in vendor: register the callback URL in its console; `state_echo_and_chat` uses it")
    try:
        endpoint = consent.authorization_endpoint or str(discover(str(consent.discovery_url))["authorization_endpoint"])
        with http_client() as client:
            response = client.get(authorization_request(consent, endpoint))
    except (httpx.HTTPError, KeyError, ValueError) as error:
        return failed(name, f"could not ask the provider: {type(error).__name__}: {error}")
    problem = _refusal(response, consent.callback_url)
    if problem:
        return failed(name, f"client {consent.client_id} with redirect_uri {consent.callback_url}: the provider {problem}")
    return passed(name, f"the provider accepts client {consent.client_id} with AgentCore's callback {consent.callback_url}")
