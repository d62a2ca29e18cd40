"""The services' own metrics, published as embedded metric format lines (services/common/metrics.py): their
names and dimension values, and CloudWatch metrics and searches over them."""

from __future__ import annotations

from aws_cdk import Duration, aws_cloudwatch as cloudwatch

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


def service_metric(namespace: str, name: str, service: str, *, period: Duration, **dimensions: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map={"Service": service, **dimensions},
        statistic="Sum",
        period=period,
    )


def search(namespace: str, name: str, service: str, dimension: str, label: str) -> cloudwatch.MathExpression:
    """Every value of `dimension` as its own line (the reasons and codes are not known at synth)."""
    return cloudwatch.MathExpression(
        expression=f'SEARCH(\'{{"{namespace}",Service,{dimension}}} MetricName="{name}" Service="{service}"\', \'Sum\', 300)',
        using_metrics={},
        label=label,
        period=FIVE_MINUTES,
    )
