"""Identity (stateful): who signs in, the demo authorization server, and shared secrets."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Fn, Stack
from constructs import Construct

from cdk_app.config import AppConfig
from stacks.constructs.auth import DemoAuthorizationServer, SignInUserPool
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.secrets import FlowSigningKey


class IdentityStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, lifecycle: Lifecycle, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.secrets_key = lifecycle.key(self, "SecretsKey", description="Encrypts the project's Secrets Manager secrets")
        prefix = config.auth_domain_prefix or Fn.join("-", [config.app_name, config.profile.value, Aws.ACCOUNT_ID])

        self.sign_in = SignInUserPool(
            self,
            "SignIn",
            domain_prefix=Fn.join("-", [prefix, "signin"]),
            callback_url=config.alb_callback_url,
            logout_url=config.signed_out_url,
            lifecycle=lifecycle,
            advanced_security=config.is_prod,
        )
        # One authorization server for every demo provider, each with its own app client; none without a demo provider.
        self.demo_authorization_server: DemoAuthorizationServer | None = None
        if config.demo_providers:
            self.demo_authorization_server = DemoAuthorizationServer(
                self,
                "DemoAuthorizationServer",
                domain_prefix=Fn.join("-", [prefix, "demo-as"]),
                providers=config.demo_providers,
                key=self.secrets_key,
                lifecycle=lifecycle,
                advanced_security=config.is_prod,
            )
        self.flow_signing_key = FlowSigningKey(self, "FlowSigningKey", key=self.secrets_key, lifecycle=lifecycle)
