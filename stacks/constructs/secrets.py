"""Secrets the services share."""

from __future__ import annotations

from aws_cdk import aws_kms as kms, aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge


class FlowSigningKey(Construct):
    """HMAC-SHA256 key for the binding protocol's flow tokens and cookies.

    The secret is JSON `{"kid": ..., "key": ...}`: the key id travels in every token so that a
    rotated key can be introduced while tokens signed with the previous one (at most ten minutes
    old) still verify. Both services read it at start through `ecs.Secret`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="HMAC key that signs session binding flow tokens and cookies",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"kid": "k1"}',  # noqa: S106 - the key id; the key itself is generated
                generate_string_key="key",
                password_length=64,
                exclude_punctuation=True,
            ),
            removal_policy=lifecycle.removal_policy,
        )
        manual = (
            "Tasks read the key at start; rotation is a documented redeploy (new kid beside the old for ten minutes), "
            "not a Lambda that would change the key under running tasks."
        )
        acknowledge(self.secret, "AwsSolutions-SMG4", manual)
        acknowledge(self.secret, "NIST.800.53.R5-SecretsManagerRotationEnabled", manual)
