"""Open-redirect payloads, generated: every way a careless redirect could be talked into leaving the origin.

The corpus is a product of templates (scheme-relative, absolute, userinfo, backslash, path tricks,
script schemes), target hosts (plain, look-alike, numeric, IDN) and spellings (percent-encoded once
and twice, leading or embedded whitespace and control characters, Unicode look-alikes of `/`, `\\`
and `.`). It is deterministic: the same list, in the same order, on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

ORIGIN_HOST = "agent.example.com"
EVIL = "evil.example"

# Hosts a redirect might be steered to: plain, subdomain look-alikes, numeric and bracketed loopback, IDN.
HOSTS: tuple[str, ...] = (
    EVIL,
    f"{ORIGIN_HOST}.{EVIL}",
    f"{EVIL}%2E{ORIGIN_HOST}",
    "2130706433",  # 127.0.0.1 as one decimal number
    "[::ffff:7f00:1]",
    "xn--evl-1na.example",
    "evil。example",  # ideographic full stop (U+3002) as the dot
    "evil．example",  # fullwidth full stop (U+FF0E)
)

# `{h}` is the target host. Each template is a distinct parser confusion.
TEMPLATES: tuple[str, ...] = (
    # scheme-relative and its slash/backslash spellings
    "//{h}",
    "///{h}",
    "////{h}/",
    "/\\{h}",
    "\\/{h}",
    "\\\\{h}",
    "/\\/{h}",
    "//{h}/%2F..",
    "//{h}//",
    "/%2F{h}",
    "/%5C{h}",
    "/%09/{h}",
    "/%0d%0a/{h}",
    "/%00//{h}",
    # absolute URLs and scheme quirks
    "http://{h}",
    "https://{h}/",
    "HTTPS://{h}",
    "hTtPs://{h}/path?x=1#y",
    "https:{h}",
    "https:/{h}",
    "https:\\\\{h}",
    "https:/\\{h}",
    "ftp://{h}",
    "//{h}:443",
    "https://{h}:8443/",
    # userinfo and authority confusion
    "https://" + ORIGIN_HOST + "@{h}",
    "https://" + ORIGIN_HOST + ":443@{h}/",
    "//" + ORIGIN_HOST + "@{h}",
    "https://{h}\\@" + ORIGIN_HOST,
    "https://{h}#@" + ORIGIN_HOST,
    "https://{h}?@" + ORIGIN_HOST,
    "https://" + ORIGIN_HOST + "%40{h}",
    "https://" + ORIGIN_HOST + ".{h}",
    "https://{h}/" + ORIGIN_HOST,
    "https://{h}/https://" + ORIGIN_HOST,
    # path and delimiter combinations
    "/;//{h}",
    "/?//{h}",
    "/#//{h}",
    ";//{h}",
    "?next=//{h}",
    "#//{h}",
    "/.//{h}",
    "/..//{h}",
    "/%2e%2e//{h}",
    "/oauth2/start/..//{h}",
    "/oauth2/session-binding?session_id=urn:ietf:params:oauth:request_uri:x&next=//{h}",
    "urn:ietf:params:oauth:request_uri:x//{h}",
)

# Spellings applied to every template: raw, encoded once, encoded twice, and whitespace games.
SPELLINGS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("raw", lambda value: value),
    ("encoded", lambda value: quote(value, safe="")),
    ("double-encoded", lambda value: quote(quote(value, safe=""), safe="")),
    ("leading-space", lambda value: " " + value),
    ("leading-tab", lambda value: "\t" + value),
)

# One-off payloads no template produces: whitespace and control characters inside the scheme, Unicode
# look-alikes of `/` and `\\`, direction overrides, script and data schemes, header injection, size.
SINGLES: tuple[str, ...] = (
    "\n//" + EVIL,
    "\r//" + EVIL,
    "\r\n//" + EVIL,
    "/\t/" + EVIL,
    "/\n/" + EVIL,
    "/\r/" + EVIL,
    "\x00//" + EVIL,
    "\x0b//" + EVIL,
    "\x0c//" + EVIL,
    "\u00a0//" + EVIL,
    "\u3000//" + EVIL,
    "\ufeff//" + EVIL,
    "ht\ttps://" + EVIL,
    "https:\n//" + EVIL,
    "//" + EVIL + "\r\nLocation: https://" + EVIL,
    "%0d%0aLocation:%20https://" + EVIL,
    "/%0d%0aSet-Cookie:%20__Host-agentcore-binding-x=1",
    "\uff0f\uff0f" + EVIL,  # fullwidth solidus
    "https:\uff0f\uff0f" + EVIL,
    "\u2044\u2044" + EVIL,  # fraction slash
    "\u2215\u2215" + EVIL,  # division slash
    "\u29f8\u29f8" + EVIL,  # big solidus
    "\uff3c\uff3c" + EVIL,  # fullwidth reverse solidus
    "/\uff3c" + EVIL,
    "\u202e//" + EVIL,  # right-to-left override
    "//\u202e" + "elpmaxe.live",
    "//" + EVIL + "\u202e/",
    "\u200b//" + EVIL,  # zero-width space
    "//\u0435vil.example",  # Cyrillic e
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    " javascript:alert(1)",
    "javascript://%0aalert(1)",
    "javascript://" + ORIGIN_HOST + "/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//" + EVIL + "/" + "a" * 8192,
    "https://" + "a" * 4096 + "." + EVIL,
    "/" + "%2F" * 2048 + EVIL,
    "\\" * 1024 + EVIL,
    "//" + EVIL + "?" + "&".join(f"p{i}=//" + EVIL for i in range(200)),
)


def _unique(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)


def payloads() -> list[str]:
    """The whole corpus, deduplicated, in a stable order: every template for every host as written,
    every spelling of every template for the two hosts that matter most, then the one-off payloads."""
    raw = (template.format(h=host) for template in TEMPLATES for host in HOSTS)
    spelled = (spell(template.format(h=host)) for template in TEMPLATES for host in HOSTS[:2] for _, spell in SPELLINGS[1:])
    return _unique([*raw, *spelled, *SINGLES])


def leaves_origin(location: str, origin: str) -> bool:
    """Whether a `Location` value, as a browser would resolve it against `origin`, names another origin.

    Deliberately strict: anything that is not a plain path (`/x`, not `//` or `/\\`) and not an
    absolute URL on exactly `origin` counts as leaving, including whitespace, control characters and
    backslashes that browsers strip or turn into `/`.
    """
    if location.startswith(origin + "/") or location == origin:
        rest = location[len(origin) :]
        return not _is_plain_path(rest or "/")
    return not _is_plain_path(location)


def _is_plain_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith("//"):
        return False
    if "\\" in value or not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        return False
    return not value[1:].lstrip("/").lower().startswith(("%2f", "%5c"))
