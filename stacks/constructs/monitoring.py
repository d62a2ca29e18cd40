"""Monitoring: the alarm topic, the alarms, and one dashboard.

The services publish their own metrics as embedded metric format lines (services/common/metrics.py);
the load balancer, ECS and Lambda publish theirs. docs/operations.md is the runbook for every alarm.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Aws,
    Duration,
    Stack,
    aws_cloudwatch as cloudwatch,
    aws_cloudwatch_actions as cloudwatch_actions,
    aws_elasticloadbalancingv2 as elbv2,
    aws_iam as iam,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
)
from constructs import Construct

from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.lambda_service import LambdaWebService
from stacks.constructs.lifecycle import Lifecycle

# The services' metric names and dimension values (services/common/metrics.py, services/*/main.py).
BINDINGS_COMPLETED = "BindingsCompleted"
BINDINGS_REFUSED = "BindingsRefused"
AUTHORIZATION_PROMPTS = "AuthorizationPrompts"
AGENTCORE_ERRORS = "AgentCoreErrors"
CACHE_HITS = "WorkloadTokenCacheHits"
CACHE_MISSES = "WorkloadTokenCacheMisses"
# Landings with a valid binding cookie but without AgentCore's echo of customState in the configured parameter.
STATE_ECHO_MISSING = "StateEchoMissing"
# Sessions burned: their landing came from another browser or user, or arrived before AgentCore's callback.
SESSIONS_CANCELLED = "SessionsCancelled"
AGENT_SERVICE = "agent"
BINDING_SERVICE = "session-binding"

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
# 5xx from a target: this many in a minute, in 2 of 3 minutes. A single failed request does not page anyone;
# a release that breaks a route does, and during a deployment ECS rolls it back.
TARGET_5XX_PER_MINUTE = 5
ELB_5XX_PER_MINUTE = 5
AGENTCORE_THROTTLES_PER_5MIN = 5
LAMBDA_ERRORS_PER_5MIN = 5


class AlarmTopic(Construct):
    """SNS topic for every alarm: KMS-encrypted with its own key (CloudWatch must be allowed to use it), TLS only."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Its own key: CloudWatch alarms cannot publish to a topic under the AWS managed SNS key, and the log
        # key's policy is for CloudWatch Logs only.
        self.key = lifecycle.key(self, "Key", description="Encrypts the alarm notifications of the AgentCore ECS app")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncrypt",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy: this key
            )
        )
        self.topic = sns.Topic(self, "Topic", display_name="AgentCore ECS alarms", master_key=self.key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{stack.region}:{stack.account}:alarm:*"},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


@dataclass(frozen=True)
class ServiceAlarms:
    """The alarms that judge a Fargate deployment: ECS rolls back when one of them fires during it."""

    target_5xx: cloudwatch.Alarm
    unhealthy_hosts: cloudwatch.Alarm | None

    @property
    def deployment(self) -> list[cloudwatch.Alarm]:
        return [a for a in (self.target_5xx, self.unhealthy_hosts) if a is not None]


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        namespace: str,
        topic: sns.ITopic,
        load_balancer: elbv2.ApplicationLoadBalancer,
        agent: FargateWebService,
        session_binding: FargateWebService | LambdaWebService,
        refusals_per_5min: int,
        state_param: str,
        require_state: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._namespace = namespace
        self._refusals_per_5min = refusals_per_5min
        self._state_param = state_param
        self._action = cloudwatch_actions.SnsAction(topic)
        self.alarms: list[cloudwatch.Alarm] = []

        self.refusal_spike = self._alarm(
            "BindingRefusalsSpike",
            self.service_metric(BINDINGS_REFUSED, BINDING_SERVICE, period=FIVE_MINUTES),
            threshold=refusals_per_5min,
            evaluation_periods=1,
            description=f"{refusals_per_5min}+ session bindings refused in 5 minutes: a possible attack (replayed or swapped "
            "sessions, forwarded consent links), or AgentCore failing. Runbook: docs/operations.md#bindingrefusalsspike",
        )
        # Only when the echo is required: then a missing echo refuses the consent. Without the requirement a missing
        # echo refuses nothing (the operator chose that), and the metric stays on the dashboard only.
        self.state_echo_missing: cloudwatch.Alarm | None = None
        if require_state:
            self.state_echo_missing = self._alarm(
                "StateEchoMissing",
                self.service_metric(STATE_ECHO_MISSING, BINDING_SERVICE, period=FIVE_MINUTES),
                threshold=1,
                evaluation_periods=1,
                description=f"AgentCore did not echo customState on the return URL in parameter '{state_param}': every consent "
                "is being refused; check docs/session-binding.md, consider binding_state_param or binding_require_state=false. "
                "Runbook: docs/operations.md#stateechomissing",
            )
        self.elb_5xx = self._alarm(
            "LoadBalancer5xx",
            load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=ONE_MINUTE, statistic="Sum"),
            threshold=ELB_5XX_PER_MINUTE,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description="The load balancer itself answers 5xx (no healthy target, a target reset or timed out, a Lambda error). "
            "Runbook: docs/operations.md#loadbalancer5xx",
        )
        self.agent = self._service_alarms("Agent", agent)
        self.session_binding = self._service_alarms("SessionBinding", session_binding)
        self.throttling = {
            service: self._alarm(
                f"{label}AgentCoreThrottling",
                self.service_metric(AGENTCORE_ERRORS, service, period=FIVE_MINUTES, ErrorCode="ThrottlingException"),
                threshold=AGENTCORE_THROTTLES_PER_5MIN,
                evaluation_periods=1,
                description=f"AgentCore Identity throttled the {service} service {AGENTCORE_THROTTLES_PER_5MIN}+ times in 5 minutes "
                "after retries. Runbook: docs/operations.md#agentcorethrottling",
            )
            for label, service in (("Agent", AGENT_SERVICE), ("SessionBinding", BINDING_SERVICE))
        }
        self.lambda_alarms: list[cloudwatch.Alarm] = []
        if isinstance(session_binding, LambdaWebService):
            function = session_binding.function
            self.lambda_alarms = [
                self._alarm(
                    "SessionBindingLambdaErrors",
                    function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                    threshold=LAMBDA_ERRORS_PER_5MIN,
                    evaluation_periods=1,
                    description="The session binding function failed (an unhandled error or a timeout). "
                    "Runbook: docs/operations.md#lambda-errors-and-throttles",
                ),
                self._alarm(
                    "SessionBindingLambdaThrottles",
                    function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                    threshold=1,
                    evaluation_periods=1,
                    description="The session binding function hit its reserved concurrency: people got errors instead of a page. "
                    "Runbook: docs/operations.md#lambda-errors-and-throttles",
                ),
            ]

        self.dashboard = self._dashboard(load_balancer, agent, session_binding)

    # ------------------------------------------------------------------ metrics and alarms

    def service_metric(self, name: str, service: str, *, period: Duration, **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={"Service": service, **dimensions},
            statistic="Sum",
            period=period,
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluation_periods: int,
        description: str,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # These are counts: no data means nothing happened (no request, no refusal), never "broken".
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _service_alarms(self, label: str, service: FargateWebService | LambdaWebService) -> ServiceAlarms:
        group = service.target_group
        target_5xx = self._alarm(
            f"{label}Target5xx",
            group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=ONE_MINUTE, statistic="Sum"),
            threshold=TARGET_5XX_PER_MINUTE,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=f"The {label} targets answer 5xx. During an ECS deployment this rolls the deployment back. "
            "Runbook: docs/operations.md#target5xx",
        )
        unhealthy = None
        if isinstance(service, FargateWebService):  # Lambda targets have no health checks here
            unhealthy = self._alarm(
                f"{label}UnhealthyHosts",
                group.metrics.unhealthy_host_count(period=ONE_MINUTE, statistic="Maximum"),
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                description=f"{label} tasks fail the load balancer's /health check. During an ECS deployment this rolls "
                "the deployment back. Runbook: docs/operations.md#unhealthyhosts",
            )
        return ServiceAlarms(target_5xx=target_5xx, unhealthy_hosts=unhealthy)

    # ------------------------------------------------------------------ dashboard

    def _search(self, name: str, service: str, dimension: str, label: str) -> cloudwatch.MathExpression:
        """Every value of `dimension` as its own line (the reasons and codes are not known at synth)."""
        return cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{"{self._namespace}",Service,{dimension}}} MetricName="{name}" Service="{service}"\', \'Sum\', 300)',
            using_metrics={},
            label=label,
            period=FIVE_MINUTES,
        )

    def _dashboard(
        self, load_balancer: elbv2.ApplicationLoadBalancer, agent: FargateWebService, session_binding: FargateWebService | LambdaWebService
    ) -> cloudwatch.Dashboard:
        metric = self.service_metric
        groups = {"agent": agent.target_group, "session binding": session_binding.target_group}
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Session bindings (per 5 min)",
                left=[
                    metric(BINDINGS_COMPLETED, BINDING_SERVICE, period=FIVE_MINUTES).with_(label="completed"),
                    metric(BINDINGS_REFUSED, BINDING_SERVICE, period=FIVE_MINUTES).with_(label="refused"),
                    metric(AUTHORIZATION_PROMPTS, AGENT_SERVICE, period=FIVE_MINUTES).with_(label="consent prompts (agent)"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Refusals by reason",
                left=[self._search(BINDINGS_REFUSED, BINDING_SERVICE, "Reason", "refused")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=self._refusals_per_5min, label="spike alarm")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="AgentCore errors by code",
                left=[
                    self._search(AGENTCORE_ERRORS, AGENT_SERVICE, "ErrorCode", "agent"),
                    self._search(AGENTCORE_ERRORS, BINDING_SERVICE, "ErrorCode", "session binding"),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"customState echo missing (per 5 min, parameter '{self._state_param}')",
                left=[metric(STATE_ECHO_MISSING, BINDING_SERVICE, period=FIVE_MINUTES).with_(label="landings without the echo")],
                left_annotations=([cloudwatch.HorizontalAnnotation(value=1, label="alarm")] if self.state_echo_missing is not None else []),
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Sessions cancelled (per 5 min)",
                left=[
                    metric(SESSIONS_CANCELLED, BINDING_SERVICE, period=FIVE_MINUTES).with_(label="all reasons"),
                    self._search(SESSIONS_CANCELLED, BINDING_SERVICE, "Reason", "cancelled"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Workload token cache (agent)",
                left=[
                    metric(CACHE_HITS, AGENT_SERVICE, period=FIVE_MINUTES).with_(label="hits"),
                    metric(CACHE_MISSES, AGENT_SERVICE, period=FIVE_MINUTES).with_(label="misses"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Requests",
                left=[load_balancer.metrics.request_count(period=ONE_MINUTE, statistic="Sum").with_(label="load balancer")],
                right=[
                    load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=ONE_MINUTE, statistic="Sum").with_(
                        label="load balancer 5xx"
                    ),
                    *[
                        group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=ONE_MINUTE, statistic="Sum").with_(
                            label=f"{name} 5xx"
                        )
                        for name, group in groups.items()
                    ],
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Target response time p99",
                left=[
                    group.metrics.target_response_time(period=ONE_MINUTE, statistic="p99").with_(label=name)
                    for name, group in groups.items()
                ],
                width=8,
            ),
        )
        ecs_services = [("agent", agent)] + (
            [("session binding", session_binding)] if isinstance(session_binding, FargateWebService) else []
        )
        checked = {name: service.target_group for name, service in ecs_services}  # Lambda targets are not health-checked
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="ECS CPU utilization (%)",
                left=[service.service.metric_cpu_utilization(period=ONE_MINUTE).with_(label=name) for name, service in ecs_services],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="ECS memory utilization (%)",
                left=[service.service.metric_memory_utilization(period=ONE_MINUTE).with_(label=name) for name, service in ecs_services],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Healthy / unhealthy targets",
                left=[
                    group.metrics.healthy_host_count(period=ONE_MINUTE, statistic="Minimum").with_(label=f"{name} healthy")
                    for name, group in checked.items()
                ],
                right=[
                    group.metrics.unhealthy_host_count(period=ONE_MINUTE, statistic="Maximum").with_(label=f"{name} unhealthy")
                    for name, group in checked.items()
                ],
                width=8,
            ),
        )
        if isinstance(session_binding, LambdaWebService):
            function = session_binding.function
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Session binding function",
                    left=[
                        function.metric_invocations(period=ONE_MINUTE, statistic="Sum"),
                        function.metric_errors(period=ONE_MINUTE, statistic="Sum"),
                        function.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
                    ],
                    right=[function.metric_duration(period=ONE_MINUTE, statistic="p99")],
                    width=12,
                )
            )
        return dashboard
