"""Services (stateless): ECS cluster, ALB with Cognito sign-in, the agent and session binding services,
and with a demo provider the demo resource API."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, aws_ec2 as ec2, aws_ecs as ecs, aws_kms as kms, aws_route53 as route53, aws_secretsmanager as sm
from constructs import Construct

from cdk_app.config import AppConfig
from cdk_app.routes import Target
from stacks.constructs.agent_identity import AgentCoreArns, ClientSecretRef
from stacks.constructs.agent_service import AgentService
from stacks.constructs.alarm_topic import AlarmTopic
from stacks.constructs.auth import DemoAuthorizationServer, SignInUserPool, issuer_url
from stacks.constructs.binding_ledger import BindingLedger
from stacks.constructs.connections_table import ConnectionsTable
from stacks.constructs.demo_api import DemoApi
from stacks.constructs.ingress import Ingress
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.listener_routes import add_routes
from stacks.constructs.monitoring import Monitoring
from stacks.constructs.service_inputs import ServiceInputs, shared_environment
from stacks.constructs.session_binding_service import session_binding_service


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
        flow_signing_key: sm.ISecret,
        secrets_key: kms.IKey,
        agentcore_arns: AgentCoreArns,
        provider_client_secrets: tuple[ClientSecretRef, ...],
        demo_authorization_server: DemoAuthorizationServer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ingress = self._ingress(config, vpc, logs_key, lifecycle)
        cluster = self._cluster(vpc, logs_key, lifecycle)
        inputs = ServiceInputs(
            config=config,
            cluster=cluster,
            load_balancer_security_group=ingress.security_group,
            environment=shared_environment(
                config,
                alb_arn=ingress.load_balancer.load_balancer_arn,
                oidc_issuer=issuer_url(sign_in.user_pool),
                oidc_client_id=sign_in.alb_client.user_pool_client_id,
            ),
            # Imported by ARN so that granting the execution roles touches only this stack's policies
            # (a grant on the owning stack's key or secret would make the stateful stack depend on this one).
            signing_secret=sm.Secret.from_secret_complete_arn(self, "FlowSigningKeySecret", flow_signing_key.secret_arn),
            secrets_key=secrets_key,
            agentcore_arns=agentcore_arns,
            provider_client_secrets=provider_client_secrets,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.demo_api = self._demo_api(config, demo_authorization_server, logs_key, lifecycle)
        self._tables(config, lifecycle)
        # The agent's tools call the demo API with the person's tokens from the demo authorization server (each demo provider's).
        self.agent = AgentService(
            self,
            "Agent",
            inputs=inputs,
            connections=self.connections,
            demo_api_url=None if self.demo_api is None else self.demo_api.url,
            sign_out_url=sign_in.sign_out_url,
        )
        self.session_binding = session_binding_service(
            self, "SessionBinding", inputs=inputs, ledger=self.binding_ledger, connections=self.connections
        )
        add_routes(
            ingress.https_listener,
            sign_in,
            {Target.AGENT: self.agent.target_group, Target.SESSION_BINDING: self.session_binding.target_group},
        )
        self._operate(config, ingress, lifecycle)
        self._outputs(config, ingress, sign_in)

    def _tables(self, config: AppConfig, lifecycle: Lifecycle) -> None:
        """The services' own state, each table under its own key; point-in-time recovery in prod."""
        # Which accounts each person connected: the binding service records consents, the agent uses and disconnects.
        self.connections = ConnectionsTable(self, "Connections", lifecycle=lifecycle, point_in_time_recovery=config.is_prod)
        # Completed and burned sessions, shared by every binding task or function instance (single use across them).
        self.binding_ledger = BindingLedger(self, "BindingLedger", lifecycle=lifecycle, point_in_time_recovery=config.is_prod)

    def _ingress(self, config: AppConfig, vpc: ec2.IVpc, logs_key: kms.IKey, lifecycle: Lifecycle) -> Ingress:
        hosted_zone = (
            route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
            )
            if config.hosted_zone_id and config.hosted_zone_name
            else None
        )
        return Ingress(
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

    def _cluster(self, vpc: ec2.IVpc, logs_key: kms.IKey, lifecycle: Lifecycle) -> ecs.Cluster:
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENHANCED)
        # ECS would create this log group on first use and leave it behind; owning it lets
        # `cdk destroy` remove it and applies the project's key and retention.
        lifecycle.log_group(
            self, "ContainerInsightsLogs", key=logs_key, name=f"/aws/ecs/containerinsights/{cluster.cluster_name}/performance"
        )
        return cluster

    def _demo_api(
        self, config: AppConfig, server: DemoAuthorizationServer | None, logs_key: kms.IKey, lifecycle: Lifecycle
    ) -> DemoApi | None:
        if not config.demo_providers:
            return None
        assert server is not None, "a demo provider needs the demo authorization server"
        return DemoApi(
            self,
            "DemoApi",
            issuer=issuer_url(server.user_pool),
            # Tokens issued to any demo provider's client are accepted; each route still needs its own scope.
            client_ids=[server.clients[p.name].client.user_pool_client_id for p in config.demo_providers],
            app_profile=config.profile.value,
            point_in_time_recovery=config.is_prod,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )

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
        self.agent.operate(self.monitoring.agent.deployment)
        self.session_binding.operate(self.monitoring.session_binding.deployment)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn, description="Subscribe here to receive the alarms")
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards:name={self.monitoring.dashboard.dashboard_name}",
            description="CloudWatch dashboard of the services",
        )

    def _outputs(self, config: AppConfig, ingress: Ingress, sign_in: SignInUserPool) -> None:
        CfnOutput(self, "AgentUrl", value=config.base_url + "/", description="Open this, sign in, chat")
        CfnOutput(self, "LoadBalancerDnsName", value=ingress.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "SignInUserPoolId", value=sign_in.user_pool.user_pool_id)
        if self.demo_api is not None:
            CfnOutput(
                self, "DemoApiUrl", value=self.demo_api.url, description="The demo resource API the agent calls (OAuth access tokens)"
            )
