"""Parts both services build once per process from their settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore
from services.common.config import ServiceSettings
from services.common.logs import set_digest_key
from services.common.signed import Keyring


def build_verifier(settings: ServiceSettings, clock: Callable[[], float] = time.time) -> AlbIdentityVerifier:
    keys = AlbKeyStore(settings.alb_keys_url, timeout_s=settings.alb_key_fetch_timeout_s)
    return AlbIdentityVerifier(
        alb_arn=settings.alb_arn,
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        keys=keys,
        leeway_s=settings.alb_token_leeway_s,
        clock=clock,
    )


def build_keyring(settings: ServiceSettings) -> Keyring:
    """The flow signing keyring; also keys the digests in logs. A bad secret stops the process at start."""
    try:
        keyring = Keyring.from_json(settings.flow_signing_keys.get_secret_value())
    except ValueError as exc:
        raise SystemExit(f"config error: FLOW_SIGNING_KEYS: {exc}") from None
    set_digest_key(keyring.derive("log-digests"))
    return keyring
