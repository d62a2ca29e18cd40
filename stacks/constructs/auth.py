"""Cognito user pools: sign-in for the ALB, and the demo's external authorization server."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from aws_cdk import (
    Duration,
    SecretValue,
    Stack,
    aws_cognito as cognito,
    aws_kms as kms,
    aws_secretsmanager as secretsmanager,
)
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

# Scopes of the demo resource server, named `<identifier>/<scope>` in tokens.
DEMO_RESOURCE_SERVER_ID = "demo-api"
DEMO_SCOPES = {
    "notes.read": "Read the signed-in user's notes",
    "notes.write": "Create notes for the signed-in user",
    "profile.read": "Read the signed-in user's profile",
}
# The app client AgentCore Identity uses; sent again by every registration, so a rename re-registers too.
DEMO_CLIENT_NAME = "agentcore-identity"


def _strong_user_pool(scope: Construct, construct_id: str, *, lifecycle: Lifecycle, advanced_security: bool) -> cognito.UserPool:
    """A user pool with the project's password, MFA and recovery settings."""
    pool = cognito.UserPool(
        scope,
        construct_id,
        self_sign_up_enabled=False,
        sign_in_aliases=cognito.SignInAliases(email=True),
        sign_in_case_sensitive=False,
        auto_verify=cognito.AutoVerifiedAttrs(email=True),
        standard_attributes=cognito.StandardAttributes(email=cognito.StandardAttribute(required=True, mutable=True)),
        password_policy=cognito.PasswordPolicy(
            min_length=14,
            require_lowercase=True,
            require_uppercase=True,
            require_digits=True,
            require_symbols=True,
            temp_password_validity=Duration.days(3),
        ),
        mfa=cognito.Mfa.OPTIONAL,
        mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
        account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
        feature_plan=cognito.FeaturePlan.PLUS if advanced_security else cognito.FeaturePlan.ESSENTIALS,
        standard_threat_protection_mode=(cognito.StandardThreatProtectionMode.FULL_FUNCTION if advanced_security else None),
        deletion_protection=lifecycle.retain,
        removal_policy=lifecycle.removal_policy,
    )
    acknowledge(
        pool,
        "AwsSolutions-COG2",
        "MFA is optional by design (DESIGN.md): people enrol TOTP themselves; requiring it would block the first sign-in of demo users.",
    )
    if not advanced_security:
        cost = "Threat protection needs the Cognito Plus tier, billed per active user; the sandbox profile holds test users only. The prod profile enables it."
        acknowledge(pool, "AwsSolutions-COG3", cost)
        acknowledge(pool, "AwsSolutions-COG8", cost)
    return pool


def issuer_url(pool: cognito.IUserPool) -> str:
    """The pool's OIDC issuer (`iss`). CloudFormation's ProviderURL attribute has no scheme, so build it in full."""
    stack = Stack.of(pool)
    return f"https://cognito-idp.{stack.region}.{stack.url_suffix}/{pool.user_pool_id}"


class SignInUserPool(Construct):
    """Who the person is: the pool the ALB authenticates against before any target sees a request."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_prefix: str,
        callback_url: str,
        logout_url: str,
        lifecycle: Lifecycle,
        advanced_security: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = _strong_user_pool(self, "Pool", lifecycle=lifecycle, advanced_security=advanced_security)
        self.domain = self.user_pool.add_domain("HostedDomain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix))
        self.logout_url = logout_url
        # The ALB is a confidential OIDC client: authorization code grant, callback /oauth2/idpresponse.
        self.alb_client = self.user_pool.add_client(
            "AlbClient",
            generate_secret=True,
            auth_flows=cognito.AuthFlow(user_srp=False, user_password=False, admin_user_password=False, custom=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[callback_url],
                logout_urls=[logout_url],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            id_token_validity=Duration.minutes(60),
            access_token_validity=Duration.minutes(60),
            refresh_token_validity=Duration.hours(12),
        )

    @property
    def sign_out_url(self) -> str:
        """Cognito's logout endpoint for the ALB's client ("Logout endpoint", Cognito developer guide): it ends
        the hosted sign-in session and sends the browser to the client's one registered logout URL."""
        query = f"client_id={self.alb_client.user_pool_client_id}&logout_uri={quote(self.logout_url, safe='')}"
        return f"{self.domain.base_url()}/logout?{query}"


class DemoAuthorizationServer(Construct):
    """The demo's *external* authorization server, so a demo needs no third-party app registration.

    A second user pool with a resource server (`demo-api`) and custom scopes. Its app client is
    the OAuth client AgentCore Identity uses; the client secret is copied into a Secrets Manager
    secret (encrypted with `key`) that the OAuth2 credential provider references.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_prefix: str,
        key: kms.IKey,
        lifecycle: Lifecycle,
        advanced_security: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = _strong_user_pool(self, "Pool", lifecycle=lifecycle, advanced_security=advanced_security)
        self.domain = self.user_pool.add_domain("HostedDomain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix))
        resource_scopes = [cognito.ResourceServerScope(scope_name=name, scope_description=text) for name, text in DEMO_SCOPES.items()]
        self.resource_server = self.user_pool.add_resource_server("DemoApi", identifier=DEMO_RESOURCE_SERVER_ID, scopes=resource_scopes)
        self.oauth_scopes: Sequence[cognito.OAuthScope] = [
            cognito.OAuthScope.OPENID,
            *(cognito.OAuthScope.resource_server(self.resource_server, s) for s in resource_scopes),
        ]
        # Only what fixes the client's identity: every setting, AgentCore's callback URL among them, is
        # written by CallbackUrlRegistration (agent identity stack), so no CloudFormation update of this
        # resource can reset them (UpdateUserPoolClient resets what it is not given).
        client_holder = Construct(self.user_pool, "AgentCoreClient")  # the logical id the L2 client had
        self.cfn_client = cognito.CfnUserPoolClient(
            client_holder, "Resource", user_pool_id=self.user_pool.user_pool_id, generate_secret=True, client_name=DEMO_CLIENT_NAME
        )
        self.client = cognito.UserPoolClient.from_user_pool_client_id(self, "Client", self.cfn_client.ref)
        self.client_secret = secretsmanager.Secret(
            self,
            "ClientSecret",
            description="Client secret of the demo authorization server's app client, for AgentCore Identity",
            encryption_key=key,
            # GetAtt ClientSecret, resolved by CloudFormation at deploy: never in the template.
            secret_object_value={"client_secret": SecretValue.resource_attribute(self.cfn_client.attr_client_secret)},
            removal_policy=lifecycle.removal_policy,
        )
        not_rotatable = (
            "The value is generated by Cognito for the app client and cannot be rotated by Secrets Manager; rotate by replacing the client."
        )
        acknowledge(self.client_secret, "AwsSolutions-SMG4", not_rotatable)
        acknowledge(self.client_secret, "NIST.800.53.R5-SecretsManagerRotationEnabled", not_rotatable)
        self.client_secret_json_key = "client_secret"  # noqa: S105 - a JSON key name, not a secret

    @property
    def discovery_url(self) -> str:
        return f"{issuer_url(self.user_pool)}/.well-known/openid-configuration"
