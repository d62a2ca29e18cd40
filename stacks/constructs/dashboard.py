"""The services' CloudWatch dashboard: alarm states, bindings and refusals, AgentCore errors, the state echo,
requests and latency, ECS tasks, and the session binding function when it runs on Lambda."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, aws_cloudwatch as cloudwatch, aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

import stacks.constructs.service_metrics as metrics
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.lambda_service import LambdaWebService

FIVE_MINUTES, ONE_MINUTE = metrics.FIVE_MINUTES, metrics.ONE_MINUTE
BINDING, AGENT = metrics.BINDING_SERVICE, metrics.AGENT_SERVICE


def services_dashboard(
    scope: Construct,
    construct_id: str,
    *,
    namespace: str,
    alarms: Sequence[cloudwatch.IAlarm],
    refusals_per_5min: int,
    state_param: str,
    state_alarmed: bool,
    load_balancer: elbv2.ApplicationLoadBalancer,
    agent: FargateWebService,
    session_binding: FargateWebService | LambdaWebService,
) -> cloudwatch.Dashboard:
    """One row per add: alarms, the binding protocol, the state echo and cancellations, traffic, then ECS."""
    dashboard = cloudwatch.Dashboard(scope, construct_id, default_interval=Duration.hours(3))
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=4))
    dashboard.add_widgets(*_binding_row(namespace, refusals_per_5min))
    dashboard.add_widgets(*_state_row(namespace, state_param, state_alarmed))
    groups = {"agent": agent.target_group, "session binding": session_binding.target_group}
    dashboard.add_widgets(*_traffic_row(namespace, load_balancer, groups))
    ecs_services = [("agent", agent)] + ([("session binding", session_binding)] if isinstance(session_binding, FargateWebService) else [])
    dashboard.add_widgets(*_ecs_row(ecs_services))
    if isinstance(session_binding, LambdaWebService):
        dashboard.add_widgets(_function_widget(session_binding))
    return dashboard


def _binding_row(namespace: str, refusals_per_5min: int) -> list[cloudwatch.IWidget]:
    def metric(name: str, service: str, label: str) -> cloudwatch.Metric:
        return metrics.service_metric(namespace, name, service, period=FIVE_MINUTES).with_(label=label)

    return [
        cloudwatch.GraphWidget(
            title="Session bindings (per 5 min)",
            left=[
                metric(metrics.BINDINGS_COMPLETED, BINDING, "completed"),
                metric(metrics.BINDINGS_REFUSED, BINDING, "refused"),
                metric(metrics.AUTHORIZATION_PROMPTS, AGENT, "consent prompts (agent)"),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Refusals by reason",
            left=[metrics.search(namespace, metrics.BINDINGS_REFUSED, BINDING, "Reason", "refused")],
            left_annotations=[cloudwatch.HorizontalAnnotation(value=refusals_per_5min, label="spike alarm")],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="AgentCore errors by code",
            left=[
                metrics.search(namespace, metrics.AGENTCORE_ERRORS, AGENT, "ErrorCode", "agent"),
                metrics.search(namespace, metrics.AGENTCORE_ERRORS, BINDING, "ErrorCode", "session binding"),
            ],
            width=8,
        ),
    ]


def _state_row(namespace: str, state_param: str, state_alarmed: bool) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title=f"customState echo missing (per 5 min, parameter '{state_param}')",
            left=[
                metrics.service_metric(namespace, metrics.STATE_ECHO_MISSING, BINDING, period=FIVE_MINUTES).with_(
                    label="landings without the echo"
                )
            ],
            left_annotations=([cloudwatch.HorizontalAnnotation(value=1, label="alarm")] if state_alarmed else []),
            width=12,
        ),
        cloudwatch.GraphWidget(
            title="Sessions cancelled (per 5 min)",
            left=[
                metrics.service_metric(namespace, metrics.SESSIONS_CANCELLED, BINDING, period=FIVE_MINUTES).with_(label="all reasons"),
                metrics.search(namespace, metrics.SESSIONS_CANCELLED, BINDING, "Reason", "cancelled"),
            ],
            width=12,
        ),
    ]


def _traffic_row(
    namespace: str, load_balancer: elbv2.ApplicationLoadBalancer, groups: Mapping[str, elbv2.IApplicationTargetGroup]
) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title="Workload token cache (agent)",
            left=[
                metrics.service_metric(namespace, metrics.CACHE_HITS, AGENT, period=FIVE_MINUTES).with_(label="hits"),
                metrics.service_metric(namespace, metrics.CACHE_MISSES, AGENT, period=FIVE_MINUTES).with_(label="misses"),
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
                group.metrics.target_response_time(period=ONE_MINUTE, statistic="p99").with_(label=name) for name, group in groups.items()
            ],
            width=8,
        ),
    ]


def _ecs_row(ecs_services: list[tuple[str, FargateWebService]]) -> list[cloudwatch.IWidget]:
    checked = {name: service.target_group for name, service in ecs_services}  # Lambda targets are not health-checked
    return [
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
    ]


def _function_widget(session_binding: LambdaWebService) -> cloudwatch.IWidget:
    function = session_binding.function
    return cloudwatch.GraphWidget(
        title="Session binding function",
        left=[
            function.metric_invocations(period=ONE_MINUTE, statistic="Sum"),
            function.metric_errors(period=ONE_MINUTE, statistic="Sum"),
            function.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
        ],
        right=[function.metric_duration(period=ONE_MINUTE, statistic="p99")],
        width=12,
    )
