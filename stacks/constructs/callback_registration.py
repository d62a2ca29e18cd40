"""Registers AgentCore's callback URL at each demo provider's app client of the demo authorization server
(deploy-time custom resources, one per client, run one after another)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy, Stack, aws_cognito as cognito, aws_iam as iam, aws_kms as kms, aws_logs as logs, custom_resources as cr
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge


def demo_client_settings(*, user_pool_id: str, client_id: str, client_name: str, scopes: list[str], callback_url: str) -> dict[str, Any]:
    """Every setting of the demo app client, as UpdateUserPoolClient wants them: the one place they are written.

    UpdateUserPoolClient resets any omitted setting to its default, so the registration sends the whole
    client configuration, name included. The client's template holds none of them (auth.py), so no
    CloudFormation update of the client can undo a registration.
    """
    return {
        "UserPoolId": user_pool_id,
        "ClientId": client_id,
        "ClientName": client_name,
        "CallbackURLs": [callback_url],
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthFlowsUserPoolClient": True,
        "AllowedOAuthScopes": scopes,
        "SupportedIdentityProviders": ["COGNITO"],
        "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH"],
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
        "AccessTokenValidity": 60,
        "IdTokenValidity": 60,
        "RefreshTokenValidity": 43200,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "minutes"},
    }


# The id AwsCustomResource gives its singleton provider function (fixed in aws-cdk-lib).
_AWS_CUSTOM_RESOURCE_SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287"


@dataclass(frozen=True)
class ClientRegistration:
    """One demo app client and what is written to it: its name, its only scopes, and its provider's callback URL."""

    construct_id: str
    client: cognito.IUserPoolClient
    client_name: str
    scopes: Sequence[str]
    callback_url: str


class CallbackUrlRegistration(Construct):
    """Writes every setting of each demo app client, AgentCore's callback URL among them, with no manual step.

    A credential provider needs its client (id and secret) and the client needs the provider's callback
    URL, unique per provider and known only once it exists: a cycle CloudFormation cannot express. One
    custom resource per client closes it after both exist, calling only `cognito-idp:UpdateUserPoolClient`
    on the one user pool. Each owns its client's settings alone: any change to them, a new client id or a
    new callback URL (a replaced provider) changes its parameters, and CloudFormation runs it again. They
    run one after another (UpdateUserPoolClient is rate-limited per account), and share one log group: the
    provider function they run on is one per stack, and takes the log group of the first.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        user_pool: cognito.IUserPool,
        clients: Sequence[ClientRegistration],
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
    ) -> None:
        super().__init__(scope, construct_id)
        log_group = logs.LogGroup(
            self, "Logs", encryption_key=logs_key, retention=lifecycle.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.resources: dict[str, cr.AwsCustomResource] = {}
        previous: cr.AwsCustomResource | None = None
        for registration in clients:
            resource = self._register(user_pool, registration, log_group)
            if previous is not None:
                resource.node.add_dependency(previous)
            self.resources[registration.construct_id] = previous = resource
        self._acknowledge_provider_function()

    def _register(self, user_pool: cognito.IUserPool, registration: ClientRegistration, log_group: logs.ILogGroup) -> cr.AwsCustomResource:
        settings = demo_client_settings(
            user_pool_id=user_pool.user_pool_id,
            client_id=registration.client.user_pool_client_id,
            client_name=registration.client_name,
            scopes=list(registration.scopes),
            callback_url=registration.callback_url,
        )
        call = cr.AwsSdkCall(
            service="CognitoIdentityServiceProvider",
            action="updateUserPoolClient",
            parameters=settings,
            # Any change of settings (new client id, callback, scopes or any other setting) changes the parameters and re-registers.
            physical_resource_id=cr.PhysicalResourceId.of(registration.client.user_pool_client_id),
        )
        resource = cr.AwsCustomResource(
            self,
            registration.construct_id,
            on_create=call,
            on_update=call,
            install_latest_aws_sdk=False,
            log_group=log_group,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["cognito-idp:UpdateUserPoolClient"], resources=[user_pool.user_pool_arn])]
            ),
        )
        acknowledge(
            resource.node.find_child("CustomResourcePolicy"),
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "Generated by AwsCustomResource for its one call: cognito-idp:UpdateUserPoolClient on the demo user pool only.",
        )
        return resource

    def _acknowledge_provider_function(self) -> None:
        # The provider function is a per-stack singleton that CDK creates beside this construct.
        function = Stack.of(self).node.find_child(_AWS_CUSTOM_RESOURCE_SINGLETON_ID)
        for rule, reason in (
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "The deploy-time provider function only writes its own logs; the managed policy grants CloudWatch Logs writes and nothing else.",
            ),
            (
                "NIST.800.53.R5-LambdaConcurrency",
                "Runs only during CloudFormation deploys of this stack, once per change; there is no traffic to bound.",
            ),
            (
                "NIST.800.53.R5-LambdaDLQ",
                "Invoked synchronously by CloudFormation, which reports a failure as a failed deployment; nothing is dropped.",
            ),
            (
                "NIST.800.53.R5-LambdaInsideVPC",
                "Calls only the public Cognito API during deploys and holds no data; a VPC would add NAT cost and nothing else.",
            ),
        ):
            target = function.node.find_child("ServiceRole") if rule.startswith("AwsSolutions-IAM4") else function
            acknowledge(target, rule, reason)
