"""Services (stateless): ECS cluster, ALB with Cognito sign-in, the agent and session binding services,
and for the demo provider the demo resource API."""

from __future__ import annotations

from typing import Any

from aws_cdk import (
    Aws,
    CfnOutput,
    Duration,
    Stack,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_elasticloadbalancingv2 as elbv2,
    aws_elasticloadbalancingv2_actions as elbv2_actions,
    aws_iam as iam,
    aws_kms as kms,
    aws_route53 as route53,
    aws_secretsmanager as secretsmanager,
)
from constructs import Construct

from cdk_app.config import AppConfig, BindingCompute, Provider
from stacks.constructs.agent_identity import AgentCoreArns, ClientSecretRef
from stacks.constructs.auth import DemoAuthorizationServer, SignInUserPool, issuer_url
from stacks.constructs.demo_api import DemoApi
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.ingress import Ingress
from stacks.constructs.lambda_service import LambdaWebService
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

# Paths served by the session binding service; everything else goes to the agent.
BINDING_PATHS = ["/oauth2/start", "/oauth2/session-binding"]
# Listener rule priorities: the first match wins, so the narrow rules come first.
PRIORITY_HEALTH = 5
PRIORITY_BINDING = 10
PRIORITY_AGENT_API = 20
PRIORITY_AGENT_UI = 30


class ServicesStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        lifecycle: Lifecycle,
        vpc: ec2.IVpc,
        logs_key: kms.IKey,
        sign_in: SignInUserPool,
        flow_signing_key: secretsmanager.ISecret,
        secrets_key: kms.IKey,
        agentcore_arns: AgentCoreArns,
        provider_client_secret: ClientSecretRef,
        demo_authorization_server: DemoAuthorizationServer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        hosted_zone = (
            route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
            )
            if config.hosted_zone_id and config.hosted_zone_name
            else None
        )
        ingress = Ingress(
            self,
            "Ingress",
            vpc=vpc,
            domain_name=config.domain_name,
            hosted_zone=hosted_zone,
            certificate_arn=config.certificate_arn,
            allowed_cidrs=config.allowed_ingress_cidrs,
            waf_enabled=config.waf_enabled,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENHANCED)
        # ECS would create this log group on first use and leave it behind; owning it lets
        # `cdk destroy` remove it and applies the project's key and retention.
        lifecycle.log_group(
            self, "ContainerInsightsLogs", key=logs_key, name=f"/aws/ecs/containerinsights/{cluster.cluster_name}/performance"
        )

        shared_environment = {
            "APP_PROFILE": config.profile.value,
            "PUBLIC_BASE_URL": config.base_url,
            "ALB_ARN": ingress.load_balancer.load_balancer_arn,
            "OIDC_ISSUER": issuer_url(sign_in.user_pool),
            "OIDC_CLIENT_ID": sign_in.alb_client.user_pool_client_id,
            "WORKLOAD_IDENTITY_NAME": config.workload_identity_name,
            "CREDENTIAL_PROVIDER_NAME": config.credential_provider_name,
            "PROVIDER_KIND": config.provider.kind.value,
            "PROVIDER_SCOPES": " ".join(config.provider.scopes),
            "SESSION_BINDING_URL": config.session_binding_url,
            "BINDING_MODE": config.binding_mode.value,
            "REQUIRE_CUSTOM_STATE": "true" if config.binding_require_state else "false",
        }
        # Imported by ARN so that granting the execution roles touches only this stack's policies
        # (a grant on the owning stack's key or secret would make the stateful stack depend on this one).
        signing_secret = secretsmanager.Secret.from_secret_complete_arn(self, "FlowSigningKeySecret", flow_signing_key.secret_arn)
        shared_secrets = {"FLOW_SIGNING_KEYS": ecs.Secret.from_secrets_manager(signing_secret)}

        # The agent's tools call the demo API with the person's tokens from the demo authorization server.
        self.demo_api: DemoApi | None = None
        agent_environment = {**shared_environment, "BEDROCK_MODEL_ID": config.bedrock_model_id}
        if config.provider.kind is Provider.DEMO:
            assert demo_authorization_server is not None, "the demo provider needs the demo authorization server"
            self.demo_api = DemoApi(
                self,
                "DemoApi",
                issuer=issuer_url(demo_authorization_server.user_pool),
                client_id=demo_authorization_server.client.user_pool_client_id,
                app_profile=config.profile.value,
                point_in_time_recovery=config.is_prod,
                logs_key=logs_key,
                lifecycle=lifecycle,
            )
            agent_environment["DEMO_API_URL"] = self.demo_api.url

        self.agent = FargateWebService(
            self,
            "Agent",
            service_dir_name="agent",
            cluster=cluster,
            load_balancer_security_group=ingress.security_group,
            environment=agent_environment,
            secrets=shared_secrets,
            desired_count=config.agent_desired_count,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.session_binding: FargateWebService | LambdaWebService
        binding_reads_signing_key: list[iam.PolicyStatement] = []
        if config.binding_compute is BindingCompute.LAMBDA:
            # No ECS secret injection on Lambda: the function reads the signing key itself, once per cold start.
            self.session_binding = LambdaWebService(
                self,
                "SessionBinding",
                service_dir_name="session_binding",
                description="Session binding service (Mangum): completes consent for the same user in the same browser",
                environment={**shared_environment, "FLOW_SIGNING_KEYS_SECRET_ARN": signing_secret.secret_arn},
                logs_key=logs_key,
                lifecycle=lifecycle,
            )
            binding_reads_signing_key = [
                iam.PolicyStatement(
                    sid="ReadFlowSigningKey", actions=["secretsmanager:GetSecretValue"], resources=[signing_secret.secret_arn]
                ),
                self._decrypt_via_secrets_manager(secrets_key),
            ]
        else:
            self.session_binding = FargateWebService(
                self,
                "SessionBinding",
                service_dir_name="session_binding",
                cluster=cluster,
                load_balancer_security_group=ingress.security_group,
                environment=shared_environment,
                secrets=shared_secrets,
                desired_count=config.binding_desired_count,
                logs_key=logs_key,
                lifecycle=lifecycle,
                cpu=256,
                memory_limit_mib=512,
            )

        for service in (self.agent, self.session_binding):
            if isinstance(service, FargateWebService):
                service.task_definition.obtain_execution_role().add_to_principal_policy(self._decrypt_via_secrets_manager(secrets_key))
        self._grant_agent(config, agentcore_arns, provider_client_secret, secrets_key)
        self._grant_session_binding(agentcore_arns, provider_client_secret, secrets_key, extra=binding_reads_signing_key)
        self._route(ingress, sign_in)

        CfnOutput(self, "AgentUrl", value=config.base_url + "/", description="Open this, sign in, chat")
        CfnOutput(self, "LoadBalancerDnsName", value=ingress.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "SignInUserPoolId", value=sign_in.user_pool.user_pool_id)
        if self.demo_api is not None:
            CfnOutput(
                self, "DemoApiUrl", value=self.demo_api.url, description="The demo resource API the agent calls (OAuth access tokens)"
            )

    # ------------------------------------------------------------------ routing

    def _route(self, ingress: Ingress, sign_in: SignInUserPool) -> None:
        """Listener rules: authenticate with Cognito, then forward. Only /health skips sign-in."""
        listener = ingress.https_listener

        def signed_in(target: elbv2.IApplicationTargetGroup, on_unauthenticated: elbv2.UnauthenticatedAction) -> elbv2.ListenerAction:
            return elbv2_actions.AuthenticateCognitoAction(
                user_pool=sign_in.user_pool,
                user_pool_client=sign_in.alb_client,
                user_pool_domain=sign_in.domain,
                on_unauthenticated_request=on_unauthenticated,
                session_timeout=Duration.hours(8),
                scope="openid email",
                next=elbv2.ListenerAction.forward([target]),
            )

        # The load balancer health probe does not pass listener rules; this is for smoke checks,
        # answered by a route that returns a constant and calls nothing.
        listener.add_action(
            "Health",
            priority=PRIORITY_HEALTH,
            conditions=[elbv2.ListenerCondition.path_patterns(["/health"]), elbv2.ListenerCondition.http_request_methods(["GET"])],
            action=elbv2.ListenerAction.forward([self.agent.target_group]),
        )
        listener.add_action(
            "SessionBinding",
            priority=PRIORITY_BINDING,
            conditions=[elbv2.ListenerCondition.path_patterns(BINDING_PATHS)],
            action=signed_in(self.session_binding.target_group, elbv2.UnauthenticatedAction.AUTHENTICATE),
        )
        # API calls from the page get a 401 instead of a redirect the browser's fetch cannot follow.
        listener.add_action(
            "AgentApi",
            priority=PRIORITY_AGENT_API,
            conditions=[elbv2.ListenerCondition.path_patterns(["/api/*"])],
            action=signed_in(self.agent.target_group, elbv2.UnauthenticatedAction.DENY),
        )
        listener.add_action(
            "AgentUi",
            priority=PRIORITY_AGENT_UI,
            conditions=[elbv2.ListenerCondition.path_patterns(["/*"])],
            action=signed_in(self.agent.target_group, elbv2.UnauthenticatedAction.AUTHENTICATE),
        )

    # ------------------------------------------------------------------ least privilege

    def _read_client_secret(self, secret: ClientSecretRef, secrets_key: kms.IKey) -> list[iam.PolicyStatement]:
        """AgentCore reads the OAuth client secret with the *caller's* credentials (forward access):
        without this the code exchange and refreshes fail with AccessDenied. Exactly one secret;
        KMS decrypt only through Secrets Manager in this region."""
        return [
            # Only through an AWS service (AgentCore's forward access session): task code cannot read it itself.
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[secret.iam_arn],
                conditions={"Bool": {"aws:ViaAWSService": "true"}},
            ),
            self._decrypt_via_secrets_manager(secrets_key),
        ]

    def _decrypt_via_secrets_manager(self, key: kms.IKey) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{self.region}.amazonaws.com"}},
        )

    def _grant_agent(self, config: AppConfig, arns: AgentCoreArns, secret: ClientSecretRef, secrets_key: kms.IKey) -> None:
        statements = [
            iam.PolicyStatement(
                sid="WorkloadAccessTokenPerUser",
                actions=["bedrock-agentcore:GetWorkloadAccessTokenForUserId"],
                resources=[arns.workload_identity_directory, arns.workload_identity],
            ),
            iam.PolicyStatement(
                sid="OutboundOAuthToken",
                actions=["bedrock-agentcore:GetResourceOauth2Token"],
                resources=arns.for_outbound_tokens,
            ),
            *self._read_client_secret(secret, secrets_key),
            iam.PolicyStatement(
                sid="InvokeConfiguredModel",
                actions=["bedrock:InvokeModel"],  # Converse; the agent does not stream from the model
                resources=self._model_arns(config),
            ),
        ]
        self.agent.allow(statements)
        self._acknowledge_secret_suffix(self.agent, secret)
        if config.model_is_inference_profile:
            acknowledge(
                self.agent.task_policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{_base_model_id(config.bedrock_model_id)}]",
                "A cross-region inference profile routes to the named model in any of its regions; the grant names that one model only.",
            )

    def _grant_session_binding(
        self, arns: AgentCoreArns, secret: ClientSecretRef, secrets_key: kms.IKey, *, extra: list[iam.PolicyStatement]
    ) -> None:
        self.session_binding.allow(
            [
                iam.PolicyStatement(
                    sid="CompleteUserConsent",
                    actions=["bedrock-agentcore:CompleteResourceTokenAuth"],
                    resources=arns.for_outbound_tokens,
                ),
                # Completion is when AgentCore exchanges the authorization code at the provider.
                *self._read_client_secret(secret, secrets_key),
                *extra,
            ]
        )
        self._acknowledge_secret_suffix(self.session_binding, secret)

    def _acknowledge_secret_suffix(self, service: FargateWebService | LambdaWebService, secret: ClientSecretRef) -> None:
        if secret.iam_arn.endswith("-??????"):
            acknowledge(
                service.task_policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{secret.iam_arn.split(':secret:')[1]}]",
                "The provider's client secret is named in config; '-??????' matches only the six random characters Secrets Manager appends to that one name.",
            )

    def _model_arns(self, config: AppConfig) -> list[str]:
        model_id = config.bedrock_model_id
        if not config.model_is_inference_profile:
            return [f"arn:{Aws.PARTITION}:bedrock:{self.region}::foundation-model/{model_id}"]
        return [
            f"arn:{Aws.PARTITION}:bedrock:{self.region}:{self.account}:inference-profile/{model_id}",
            f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/{_base_model_id(model_id)}",
        ]


def _base_model_id(model_id: str) -> str:
    """`us.anthropic.claude-…` → `anthropic.claude-…` (the model behind an inference profile)."""
    return model_id.split(".", 1)[1]
