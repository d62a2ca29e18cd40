"""Parts both services build once per process from their settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore
from services.common.logs import set_digest_key
from services.common.settings import ServiceSettings
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
        keyring = Keyring.from_json(_signing_keys(settings))
    except ValueError as exc:
        raise SystemExit(f"config error: FLOW_SIGNING_KEYS: {exc}") from None
    set_digest_key(keyring.derive("log-digests"))
    return keyring


def _signing_keys(settings: ServiceSettings) -> str:
    if settings.flow_signing_keys is not None:
        return settings.flow_signing_keys.get_secret_value()
    import boto3  # noqa: PLC0415 - only on Lambda, once per cold start
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        client = boto3.session.Session().client("secretsmanager", region_name=settings.aws_region)
        return str(client.get_secret_value(SecretId=settings.flow_signing_keys_secret_arn)["SecretString"])
    except (BotoCoreError, ClientError) as exc:
        raise SystemExit(f"config error: FLOW_SIGNING_KEYS_SECRET_ARN: could not read the secret ({type(exc).__name__})") from None
