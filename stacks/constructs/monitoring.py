"""Monitoring: the alarms of the load balancer and both services, and their dashboard.

The services publish their own metrics as embedded metric format lines (services/common/metrics.py);
the load balancer, ECS and Lambda publish theirs. docs/operations.md is the runbook for every alarm.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_cloudwatch as cloudwatch, aws_elasticloadbalancingv2 as elbv2, aws_sns as sns
from constructs import Construct

import stacks.constructs.service_metrics as metrics
from stacks.constructs.count_alarms import CountAlarms
from stacks.constructs.dashboard import services_dashboard
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.lambda_service import LambdaWebService

# 5xx from a target: this many in a minute, in 2 of 3 minutes. A single failed request does not page anyone;
# a release that breaks a route does, and during a deployment ECS rolls it back.
TARGET_5XX_PER_MINUTE = 5
ELB_5XX_PER_MINUTE = 5
AGENTCORE_THROTTLES_PER_5MIN = 5
LAMBDA_ERRORS_PER_5MIN = 5


@dataclass(frozen=True)
class ServiceAlarms:
    """The alarms that judge a Fargate deployment: ECS rolls back when one of them fires during it."""

    target_5xx: cloudwatch.Alarm
    unhealthy_hosts: cloudwatch.Alarm | None

    @property
    def deployment(self) -> list[cloudwatch.Alarm]:
        return [a for a in (self.target_5xx, self.unhealthy_hosts) if a is not None]


class Monitoring(CountAlarms):
    """Every alarm notifies `topic` (when it fires and when it clears); `dashboard` shows them with the metrics."""

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
        super().__init__(scope, construct_id, topic=topic)
        self._namespace = namespace
        self._binding_alarms(refusals_per_5min, state_param, require_state)
        self.elb_5xx = self.alarm(
            "LoadBalancer5xx",
            load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=metrics.ONE_MINUTE, statistic="Sum"),
            threshold=ELB_5XX_PER_MINUTE,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description="The load balancer itself answers 5xx (no healthy target, a target reset or timed out, a Lambda error). "
            "Runbook: docs/operations.md#loadbalancer5xx",
        )
        self.agent = self._service_alarms("Agent", agent)
        self.session_binding = self._service_alarms("SessionBinding", session_binding)
        self.throttling = {
            service: self.alarm(
                f"{label}AgentCoreThrottling",
                self._metric(metrics.AGENTCORE_ERRORS, service, ErrorCode="ThrottlingException"),
                threshold=AGENTCORE_THROTTLES_PER_5MIN,
                evaluation_periods=1,
                description=f"AgentCore Identity throttled the {service} service {AGENTCORE_THROTTLES_PER_5MIN}+ times in 5 minutes "
                "after retries. Runbook: docs/operations.md#agentcorethrottling",
            )
            for label, service in (("Agent", metrics.AGENT_SERVICE), ("SessionBinding", metrics.BINDING_SERVICE))
        }
        self.lambda_alarms = self._function_alarms(session_binding) if isinstance(session_binding, LambdaWebService) else []
        self.dashboard = services_dashboard(
            self,
            "Dashboard",
            namespace=namespace,
            alarms=self.alarms,
            refusals_per_5min=refusals_per_5min,
            state_param=state_param,
            state_alarmed=self.state_echo_missing is not None,
            load_balancer=load_balancer,
            agent=agent,
            session_binding=session_binding,
        )

    def _metric(self, name: str, service: str, **dimensions: str) -> cloudwatch.Metric:
        return metrics.service_metric(self._namespace, name, service, period=metrics.FIVE_MINUTES, **dimensions)

    def _binding_alarms(self, refusals_per_5min: int, state_param: str, require_state: bool) -> None:
        self.refusal_spike = self.alarm(
            "BindingRefusalsSpike",
            self._metric(metrics.BINDINGS_REFUSED, metrics.BINDING_SERVICE),
            threshold=refusals_per_5min,
            evaluation_periods=1,
            description=f"{refusals_per_5min}+ session bindings refused in 5 minutes: a possible attack (replayed or swapped "
            "sessions, forwarded consent links), or AgentCore failing. Runbook: docs/operations.md#bindingrefusalsspike",
        )
        # Only when the echo is required: then a missing echo refuses the consent. Without the requirement a missing
        # echo refuses nothing (the operator chose that), and the metric stays on the dashboard only.
        self.state_echo_missing: cloudwatch.Alarm | None = None
        if require_state:
            self.state_echo_missing = self.alarm(
                "StateEchoMissing",
                self._metric(metrics.STATE_ECHO_MISSING, metrics.BINDING_SERVICE),
                threshold=1,
                evaluation_periods=1,
                description=f"AgentCore did not echo customState on the return URL in parameter '{state_param}': every consent "
                "is being refused; check docs/session-binding.md, consider binding_state_param or binding_require_state=false. "
                "Runbook: docs/operations.md#stateechomissing",
            )

    def _service_alarms(self, label: str, service: FargateWebService | LambdaWebService) -> ServiceAlarms:
        group = service.target_group
        target_5xx = self.alarm(
            f"{label}Target5xx",
            group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=metrics.ONE_MINUTE, statistic="Sum"),
            threshold=TARGET_5XX_PER_MINUTE,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=f"The {label} targets answer 5xx. During an ECS deployment this rolls the deployment back. "
            "Runbook: docs/operations.md#target5xx",
        )
        unhealthy = None
        if isinstance(service, FargateWebService):  # Lambda targets have no health checks here
            unhealthy = self.alarm(
                f"{label}UnhealthyHosts",
                group.metrics.unhealthy_host_count(period=metrics.ONE_MINUTE, statistic="Maximum"),
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                description=f"{label} tasks fail the load balancer's /health check. During an ECS deployment this rolls "
                "the deployment back. Runbook: docs/operations.md#unhealthyhosts",
            )
        return ServiceAlarms(target_5xx=target_5xx, unhealthy_hosts=unhealthy)

    def _function_alarms(self, session_binding: LambdaWebService) -> list[cloudwatch.Alarm]:
        function = session_binding.function
        return [
            self.alarm(
                "SessionBindingLambdaErrors",
                function.metric_errors(period=metrics.FIVE_MINUTES, statistic="Sum"),
                threshold=LAMBDA_ERRORS_PER_5MIN,
                evaluation_periods=1,
                description="The session binding function failed (an unhandled error or a timeout). "
                "Runbook: docs/operations.md#lambda-errors-and-throttles",
            ),
            self.alarm(
                "SessionBindingLambdaThrottles",
                function.metric_throttles(period=metrics.FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                description="The session binding function hit its reserved concurrency: people got errors instead of a page. "
                "Runbook: docs/operations.md#lambda-errors-and-throttles",
            ),
        ]
