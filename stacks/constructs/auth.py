"""Cognito user pools: sign-in for the ALB, and the demo's external authorization server (one app client per
demo provider, stacks/constructs/demo_client.py)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from aws_cdk import Duration, Stack, aws_cognito as cognito, aws_kms as kms
from constructs import Construct

from cdk_app.config import DEMO_API_SCOPES, DEMO_RESOURCE_SERVER_ID, ProviderConfig
from stacks.constructs.demo_client import DemoClient
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

# The app clients AgentCore Identity uses are named `agentcore-identity-<provider name>`; the name is sent again by
# every registration, so a rename re-registers too.
DEMO_CLIENT_NAME_PREFIX = "agentcore-identity"


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

    A second user pool with a resource server (`demo-api`) and its custom scopes (DEMO_API_SCOPES), and one app
    client per demo provider (`clients`, by provider name): each is the OAuth client of that provider's AgentCore
    credential provider, allowed only that provider's scopes (written by the callback registration), with its
    client secret copied into a Secrets Manager secret encrypted with `key`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_prefix: str,
        providers: Sequence[ProviderConfig],
        key: kms.IKey,
        lifecycle: Lifecycle,
        advanced_security: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = _strong_user_pool(self, "Pool", lifecycle=lifecycle, advanced_security=advanced_security)
        self.domain = self.user_pool.add_domain("HostedDomain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix))
        resource_scopes = [cognito.ResourceServerScope(scope_name=name, scope_description=words) for name, words in DEMO_API_SCOPES.items()]
        self.resource_server = self.user_pool.add_resource_server("DemoApi", identifier=DEMO_RESOURCE_SERVER_ID, scopes=resource_scopes)
        # Cognito holds up to 1,000 app clients per user pool ("Quotas in Amazon Cognito"); config allows ten providers.
        self.clients: dict[str, DemoClient] = {
            provider.name: DemoClient(
                self,
                f"AgentCoreClient{provider.id_part}",
                user_pool=self.user_pool,
                client_name=f"{DEMO_CLIENT_NAME_PREFIX}-{provider.name}",
                scopes=[self._scope_name(s) for s in provider.scope_names],
                key=key,
                lifecycle=lifecycle,
            )
            for provider in providers
        }

    def _scope_name(self, scope: str) -> str:
        """`demo-api/notes.read`, its identifier read from the resource server: a new resource server re-registers the clients."""
        return f"{self.resource_server.user_pool_resource_server_id}/{scope.split('/', 1)[1]}"

    @property
    def discovery_url(self) -> str:
        return f"{issuer_url(self.user_pool)}/.well-known/openid-configuration"
