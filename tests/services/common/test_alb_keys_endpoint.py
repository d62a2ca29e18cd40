"""Where the services fetch the ALB's signing keys: the endpoint the ALB guide documents for AWS_REGION's partition.

Source: "User claims encoding and signature verification" in "Authenticate users using an Application Load
Balancer" (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html):
`https://public-keys.auth.elb.<region>.amazonaws.com/<key-id>` in each AWS Region,
`https://s3-us-gov-<west|east>-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-<west|east>-1/<key-id>` in GovCloud,
nothing for the China or isolated partitions. Settings are read from the environment, as on ECS and Lambda.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from cdk_app.config import SUPPORTED_REGIONS
from services.common.alb_identity import AlbKeyStore, NotAuthenticated
from services.common.settings import ServiceSettings, documented_alb_keys_url, load_settings

ENVIRONMENT = {
    "PUBLIC_BASE_URL": "https://agent.example.com",
    "ALB_ARN": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/agent/0123456789abcdef",
    "OIDC_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
    "OIDC_CLIENT_ID": "example-client",
    "FLOW_SIGNING_KEYS": '{"kid": "k1", "key": "not-used-here"}',
    "CONNECTIONS_TABLE": "example-connections",
}


def settings_from_environment(monkeypatch: pytest.MonkeyPatch, region: str, **extra: str) -> ServiceSettings:
    for name in ("ALB_KEYS_BASE_URL", "APP_PROFILE", "FLOW_SIGNING_KEYS_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**ENVIRONMENT, "AWS_REGION": region, **extra}.items():
        monkeypatch.setenv(name, value)
    return load_settings(ServiceSettings)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", "https://public-keys.auth.elb.us-east-1.amazonaws.com"),
        ("eu-west-1", "https://public-keys.auth.elb.eu-west-1.amazonaws.com"),
        ("ap-southeast-7", "https://public-keys.auth.elb.ap-southeast-7.amazonaws.com"),
        ("us-gov-west-1", "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1"),
        ("us-gov-east-1", "https://s3-us-gov-east-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-east-1"),
    ],
)
def test_the_documented_endpoint_of_the_partition(monkeypatch: pytest.MonkeyPatch, region: str, expected: str) -> None:
    assert settings_from_environment(monkeypatch, region).alb_keys_url == expected


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1", "us-iso-east-1", "us-isob-east-1", "us-gov-south-1"])
def test_a_partition_without_a_documented_endpoint_stops_the_service(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    with pytest.raises(SystemExit) as caught:
        settings_from_environment(monkeypatch, region)
    message = str(caught.value)
    assert f"AWS_REGION {region!r}: the ALB documentation gives no public-key endpoint" in message
    assert "set ALB_KEYS_BASE_URL" in message
    assert "\n" not in message


def test_alb_keys_base_url_is_the_override_in_any_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    china = settings_from_environment(monkeypatch, "cn-north-1", ALB_KEYS_BASE_URL="https://keys.example.cn/alb/")
    assert china.alb_keys_url == "https://keys.example.cn/alb"
    # The local stack: a loopback key server, plain http under the local profile.
    local = settings_from_environment(monkeypatch, "us-east-1", APP_PROFILE="local", ALB_KEYS_BASE_URL="http://127.0.0.1:8003")
    assert local.alb_keys_url == "http://127.0.0.1:8003"


@pytest.mark.parametrize(
    ("region", "key_url"),
    [
        ("eu-west-1", "https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}"),
        ("us-gov-west-1", "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/{kid}"),
    ],
)
def test_the_key_store_appends_the_kid_as_the_documented_path(monkeypatch: pytest.MonkeyPatch, region: str, key_url: str) -> None:
    kid = str(uuid.uuid4())
    requested: list[str] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(403)  # what S3 answers for a key it does not hold (no ListBucket)

    settings = settings_from_environment(monkeypatch, region)
    store = AlbKeyStore(settings.alb_keys_url, timeout_s=1.0, client=httpx.Client(transport=httpx.MockTransport(endpoint)))
    with pytest.raises(NotAuthenticated) as caught:
        store.get(kid)
    assert caught.value.reason == "unknown_kid"
    assert requested == [key_url.format(kid=kid)]


def test_every_region_the_config_accepts_has_the_regional_endpoint() -> None:
    """Synth accepts only aws-partition regions (cdk_app/config.py), where the endpoint is the regional host."""
    assert SUPPORTED_REGIONS
    for region in SUPPORTED_REGIONS:
        assert documented_alb_keys_url(region) == f"https://public-keys.auth.elb.{region}.amazonaws.com"
