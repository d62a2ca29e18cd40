"""The local Secrets Manager of the demo stack (`local/demo/secretsmanager.py`): moto's server in this process."""

from __future__ import annotations

import urllib.request

from local.demo.secretsmanager import LocalSecretsManager, endpoint


def test_a_stack_sees_when_a_reset_of_moto_wiped_its_secrets() -> None:
    """moto's state is per process: tests/deploy reset it before each test, and a shared stack must then be replaced."""
    store = LocalSecretsManager("eu-west-1")
    arn = store.create_json_secret("test/client-secret", {"client_secret": "s3cret"})
    assert store.read(arn, "client_secret") == (arn, "s3cret")
    assert store.missing() == []

    reset = urllib.request.Request(f"{endpoint()}/moto-api/reset", data=b"", method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(reset, timeout=10) as response:  # noqa: S310
        response.read()
    assert store.missing() == [arn]
