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
from cdk_app.routes import ROUTES, SIGN_IN_SCOPE, SIGN_IN_SESSION_TIMEOUT_S, SignIn, Target
from stacks.constructs.agent_identity import AgentCoreArns, ClientSecretRef
from stacks.constructs.auth import DemoAuthorizationServer, SignInUserPool, issuer_url
from stacks.constructs.binding_ledger import BindingLedger
from stacks.constructs.demo_api import DemoApi
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.ingress import Ingress
from stacks.constructs.lambda_service import LambdaWebService
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.monitoring import AlarmTopic, Monitoring
from stacks.constructs.nag import acknowledge

# Draining (deregistration delay) per service: a request in flight when a task leaves may finish.
# The agent's chat turn is bounded by TURN_TIMEOUT_S (180 s by default); a binding by AgentCore's
# timeouts and retries (about 20 s at worst). docs/operations.md, "Shutdown timings".
AGENT_DRAIN_S = 180
BINDING_DRAIN_S = 30
# Target tracking on load balancer requests per task and minute, next to CPU (whichever asks for more tasks wins).
AGENT_REQUESTS_PER_TASK = 120  # chat turns hold a task for seconds (model calls), so few per minute
BINDING_REQUESTS_PER_TASK = 600  # one short AgentCore call each


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
            "METRICS_NAMESPACE": config.alarms.metrics_namespace,
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
            desired_count=config.agent_scaling.min_tasks,
            logs_key=logs_key,
            lifecycle=lifecycle,
            deregistration_delay_s=AGENT_DRAIN_S,
        )
        # Completed and burned sessions, shared by every binding task or function instance (single use across them).
        self.binding_ledger = BindingLedger(self, "BindingLedger", lifecycle=lifecycle, point_in_time_recovery=config.is_prod)
        binding_environment = {
            **shared_environment,
            "CUSTOM_STATE_PARAM": config.binding_state_param,
            "BINDING_TABLE": self.binding_ledger.table.table_name,
        }
        self.session_binding: FargateWebService | LambdaWebService
        binding_reads_signing_key: list[iam.PolicyStatement] = []
        if config.binding_compute is BindingCompute.LAMBDA:
            # No ECS secret injection on Lambda: the function reads the signing key itself, once per cold start.
            self.session_binding = LambdaWebService(
                self,
                "SessionBinding",
                service_dir_name="session_binding",
                description="Session binding service (Mangum): completes consent for the same user in the same browser",
                environment={**binding_environment, "FLOW_SIGNING_KEYS_SECRET_ARN": signing_secret.secret_arn},
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
                environment=binding_environment,
                secrets=shared_secrets,
                desired_count=config.binding_scaling.min_tasks,
                logs_key=logs_key,
                lifecycle=lifecycle,
                cpu=256,
                memory_limit_mib=512,
                deregistration_delay_s=BINDING_DRAIN_S,
            )

        for service in (self.agent, self.session_binding):
            if isinstance(service, FargateWebService):
                service.task_definition.obtain_execution_role().add_to_principal_policy(self._decrypt_via_secrets_manager(secrets_key))
        self._grant_agent(config, agentcore_arns, provider_client_secret, secrets_key)
        self._grant_session_binding(
            agentcore_arns, provider_client_secret, secrets_key, extra=[*self.binding_ledger.statements(), *binding_reads_signing_key]
        )
        self._route(ingress, sign_in)
        self._operate(config, ingress, lifecycle)

        CfnOutput(self, "AgentUrl", value=config.base_url + "/", description="Open this, sign in, chat")
        CfnOutput(self, "LoadBalancerDnsName", value=ingress.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "SignInUserPoolId", value=sign_in.user_pool.user_pool_id)
        if self.demo_api is not None:
            CfnOutput(
                self, "DemoApiUrl", value=self.demo_api.url, description="The demo resource API the agent calls (OAuth access tokens)"
            )

    # ------------------------------------------------------------------ operations

    def _operate(self, config: AppConfig, ingress: Ingress, lifecycle: Lifecycle) -> None:
        """Alarms to one topic, a dashboard, autoscaling, and rollback of a deployment that trips an alarm."""
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", email=config.alarms.email, lifecycle=lifecycle)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            namespace=config.alarms.metrics_namespace,
            topic=self.alarm_topic.topic,
            load_balancer=ingress.load_balancer,
            agent=self.agent,
            session_binding=self.session_binding,
            refusals_per_5min=config.alarms.refusals_per_5min,
            state_param=config.binding_state_param,
            require_state=config.binding_require_state,
        )
        # Scaling needs the target groups attached to the listener (request count is per target group).
        self.agent.scale(
            min_tasks=config.agent_scaling.min_tasks, max_tasks=config.agent_scaling.max_tasks, requests_per_target=AGENT_REQUESTS_PER_TASK
        )
        self.agent.roll_back_on(self.monitoring.agent.deployment)
        if isinstance(self.session_binding, FargateWebService):
            self.session_binding.scale(
                min_tasks=config.binding_scaling.min_tasks,
                max_tasks=config.binding_scaling.max_tasks,
                requests_per_target=BINDING_REQUESTS_PER_TASK,
            )
            self.session_binding.roll_back_on(self.monitoring.session_binding.deployment)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn, description="Subscribe here to receive the alarms")
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards:name={self.monitoring.dashboard.dashboard_name}",
            description="CloudWatch dashboard of the services",
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
                session_timeout=Duration.seconds(SIGN_IN_SESSION_TIMEOUT_S),
                scope=SIGN_IN_SCOPE,
                next=elbv2.ListenerAction.forward([target]),
            )

        # One definition for this listener and the local ALB (cdk_app/routes.py): first match by priority wins.
        targets = {Target.AGENT: self.agent.target_group, Target.SESSION_BINDING: self.session_binding.target_group}
        unauthenticated = {SignIn.AUTHENTICATE: elbv2.UnauthenticatedAction.AUTHENTICATE, SignIn.DENY: elbv2.UnauthenticatedAction.DENY}
        for route in ROUTES:
            conditions = [elbv2.ListenerCondition.path_patterns(list(route.paths))]
            if route.methods:
                conditions.append(elbv2.ListenerCondition.http_request_methods(list(route.methods)))
            target = targets[route.target]
            action = (
                elbv2.ListenerAction.forward([target])
                if route.sign_in is SignIn.NONE
                else signed_in(target, unauthenticated[route.sign_in])
            )
            listener.add_action(route.name, priority=route.priority, conditions=conditions, action=action)

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
