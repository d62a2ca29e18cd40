"""Operations: alarm topic, alarms, dashboard, deployment rollback, autoscaling and shutdown timings."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.stacks.conftest import PROD, ROOT, Synth, dockerfile_stage, one, render, resources, settings_class, synth

NAMESPACE = "agentcore-ecs/sandbox"
ON_LAMBDA = (("binding_compute", "lambda"),)


def _ref_of(template: dict[str, Any], resource_type: str, prefix: str) -> dict[str, str]:
    [name] = [k for k in resources(template, resource_type) if k.startswith(prefix)]
    return {"Ref": name}


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.removeprefix("Monitoring"): v["Properties"] for k, v in resources(template, "AWS::CloudWatch::Alarm").items()}


def _alarm(template: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [v for k, v in _alarms(template).items() if re.fullmatch(rf"{name}[0-9A-F]{{8}}", k)]
    return found


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: render(d["Value"]) for d in alarm["Dimensions"]}


# ---------------------------------------------------------------- topic


def test_alarm_topic_is_encrypted_with_its_own_rotated_key_and_tls_only(demo: Synth) -> None:
    template = demo.raw("services")
    topic = one(template, "AWS::SNS::Topic")["Properties"]
    key_name = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = template["Resources"][key_name]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    cloudwatch = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert [sorted(s["Action"]) for s in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey*"]]

    policy = one(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "sns:Publish"
    [publish] = [s for s in policy if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert (
        render(publish["Condition"]["ArnLike"]["aws:SourceArn"])
        == "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"
    )
    assert render(publish["Condition"]["StringEquals"]["aws:SourceAccount"]) == "${AWS::AccountId}"
    assert not resources(template, "AWS::SNS::Subscription")  # no address configured


def test_alarm_email_subscribes_to_the_topic() -> None:
    with_email = synth((("alarm_email", "ops@example.com"),))
    with_email.template("services").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": Match.any_value()}
    )


# ---------------------------------------------------------------- alarms


def test_every_alarm_notifies_the_topic_and_treats_missing_data_as_fine(demo: Synth) -> None:
    template = demo.raw("services")
    topic = _ref_of(template, "AWS::SNS::Topic", "AlarmTopic")
    alarms = _alarms(template)
    assert len(alarms) == 9
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert "docs/operations.md#" in alarm["AlarmDescription"]


def test_refusal_spike_alarm_sums_bindings_refused_per_five_minutes(demo: Synth) -> None:
    alarm = _alarm(demo.raw("services"), "BindingRefusalsSpike")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (NAMESPACE, "BindingsRefused", "Sum", 300)
    assert _dimensions(alarm) == {"Service": "session-binding"}  # the total: every reason
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (50, 1)


def test_refusal_threshold_and_namespace_come_from_config() -> None:
    tuned = synth((("alarm_refusals_per_5min", "7"), ("metrics_namespace", "Team/Agent")))
    alarm = _alarm(tuned.raw("services"), "BindingRefusalsSpike")
    assert alarm["Threshold"] == 7 and alarm["Namespace"] == "Team/Agent"


def test_state_echo_missing_alarm_fires_on_the_first_landing_without_the_echo(demo: Synth) -> None:
    template = demo.raw("services")
    alarm = _alarm(template, "StateEchoMissing")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (NAMESPACE, "StateEchoMissing", "Sum", 300)
    assert _dimensions(alarm) == {"Service": "session-binding"}
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["ComparisonOperator"]) == (1, 1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    topic = _ref_of(template, "AWS::SNS::Topic", "AlarmTopic")
    assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
    description = alarm["AlarmDescription"]
    for words in (
        "AgentCore did not echo customState on the return URL in parameter 'state'",
        "every consent is being refused",
        "docs/session-binding.md",
        "binding_state_param",
        "binding_require_state=false",
        "docs/operations.md#stateechomissing",
    ):
        assert words in description, words


def test_state_echo_alarm_names_the_configured_parameter_and_exists_only_when_the_echo_is_required() -> None:
    renamed = synth((("binding_state_param", "custom_state"),)).raw("services")
    assert "in parameter 'custom_state'" in _alarm(renamed, "StateEchoMissing")["AlarmDescription"]
    relaxed = synth((("binding_require_state", "false"),)).raw("services")
    assert not [k for k in _alarms(relaxed) if k.startswith("StateEchoMissing")]  # a missing echo refuses nothing then
    body = str(render(one(relaxed, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]))
    assert "StateEchoMissing" in body  # still on the dashboard


@pytest.mark.parametrize("service", ["Agent", "SessionBinding"])
def test_target_5xx_and_unhealthy_host_alarms_per_target_group(demo: Synth, service: str) -> None:
    template = demo.raw("services")
    group = _ref_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup", f"{service}TargetGroup")["Ref"]
    for name, metric, statistic in (
        (f"{service}Target5xx", "HTTPCode_Target_5XX_Count", "Sum"),
        (f"{service}UnhealthyHosts", "UnHealthyHostCount", "Maximum"),
    ):
        alarm = _alarm(template, name)
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
            "AWS/ApplicationELB",
            metric,
            statistic,
            60,
        )
        dimensions = _dimensions(alarm)
        assert dimensions["TargetGroup"] == "${" + group + ".TargetGroupFullName}"
        assert "IngressLoadBalancerHttps" in str(dimensions["LoadBalancer"])  # app/<name>/<id>, cut from the listener ARN
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_load_balancer_5xx_alarm(demo: Synth) -> None:
    alarm = _alarm(demo.raw("services"), "LoadBalancer5xx")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum")
    assert set(_dimensions(alarm)) == {"LoadBalancer"}


@pytest.mark.parametrize(("label", "service"), [("Agent", "agent"), ("SessionBinding", "session-binding")])
def test_agentcore_throttling_alarm_per_service(demo: Synth, label: str, service: str) -> None:
    alarm = _alarm(demo.raw("services"), f"{label}AgentCoreThrottling")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (NAMESPACE, "AgentCoreErrors", "Sum", 300)
    assert _dimensions(alarm) == {"Service": service, "ErrorCode": "ThrottlingException"}


def test_metric_names_match_what_the_services_emit() -> None:
    from services.common import metrics
    from stacks.constructs import service_metrics as monitoring

    for name in (
        "BINDINGS_COMPLETED",
        "BINDINGS_REFUSED",
        "AUTHORIZATION_PROMPTS",
        "AGENTCORE_ERRORS",
        "STATE_ECHO_MISSING",
        "SESSIONS_CANCELLED",
    ):
        assert getattr(monitoring, name) == getattr(metrics, name)
    assert (monitoring.CACHE_HITS, monitoring.CACHE_MISSES) == (metrics.WORKLOAD_TOKEN_CACHE_HITS, metrics.WORKLOAD_TOKEN_CACHE_MISSES)
    from services.agent.runtime import SERVICE_NAME as AGENT
    from services.session_binding.runtime import SERVICE_NAME as BINDING

    assert (monitoring.AGENT_SERVICE, monitoring.BINDING_SERVICE) == (AGENT, BINDING)


def test_services_get_the_metrics_namespace(demo: Synth) -> None:
    for task in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").values():
        env = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
        assert env["METRICS_NAMESPACE"] == NAMESPACE


# ---------------------------------------------------------------- dashboard


def test_dashboard_shows_service_load_balancer_and_ecs_metrics(demo: Synth) -> None:
    dashboard = one(demo.raw("services"), "AWS::CloudWatch::Dashboard")["Properties"]
    body = str(render(dashboard["DashboardBody"]))
    for expected in (
        "BindingsCompleted",
        "BindingsRefused",
        "AuthorizationPrompts",
        "WorkloadTokenCacheHits",
        "WorkloadTokenCacheMisses",
        "SEARCH(",
        "agentcore-ecs/sandbox",
        "Service,Reason} MetricName=",
        "Service,ErrorCode} MetricName=",
        "AgentCoreErrors",
        "RequestCount",
        "TargetResponseTime",
        '"stat":"p99"',
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        "CPUUtilization",
        "MemoryUtilization",
        "UnHealthyHostCount",
        '"type":"alarm"',
        "StateEchoMissing",
        "SessionsCancelled",
        "customState echo missing (per 5 min, parameter 'state')",
        "Sessions cancelled (per 5 min)",
        'MetricName=\\"SessionsCancelled\\"',  # by reason, as a search
    ):
        assert expected in body, expected


# ---------------------------------------------------------------- deployments and scaling


def test_ecs_deployments_roll_back_on_the_5xx_and_unhealthy_alarms(demo: Synth) -> None:
    template = demo.raw("services")
    for service in ("Agent", "SessionBinding"):
        [props] = [v["Properties"] for k, v in resources(template, "AWS::ECS::Service").items() if k.startswith(f"{service}Service")]
        deployment = props["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        alarms = deployment["Alarms"]
        assert alarms["Enable"] is True and alarms["Rollback"] is True
        expected = [
            _ref_of(template, "AWS::CloudWatch::Alarm", f"Monitoring{service}Target5xx"),
            _ref_of(template, "AWS::CloudWatch::Alarm", f"Monitoring{service}UnhealthyHosts"),
        ]
        assert alarms["AlarmNames"] == expected


@pytest.mark.parametrize(("shape", "bounds"), [((), (1, 2)), (PROD, (2, 6))], ids=["sandbox", "prod"])
def test_both_services_scale_on_cpu_and_requests_within_bounds(shape: tuple[tuple[str, str], ...], bounds: tuple[int, int]) -> None:
    template = synth(shape).raw("services")
    targets = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == 2
    for name, target in targets.items():
        props = target["Properties"]
        assert (props["MinCapacity"], props["MaxCapacity"]) == bounds
        assert props["ScalableDimension"] == "ecs:service:DesiredCount"
        policies = [
            p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
            for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
            if p["Properties"]["ScalingTargetId"] == {"Ref": name}
        ]
        kinds = {p["PredefinedMetricSpecification"]["PredefinedMetricType"]: p for p in policies}
        assert set(kinds) == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
        assert kinds["ECSServiceAverageCPUUtilization"]["TargetValue"] == 60
        label = render(kinds["ALBRequestCountPerTarget"]["PredefinedMetricSpecification"]["ResourceLabel"])
        assert "TargetGroupFullName" in label
    for service in resources(template, "AWS::ECS::Service").values():
        assert service["Properties"]["DesiredCount"] == bounds[0]  # a new service starts at the minimum


def test_scaling_bounds_come_from_config() -> None:
    tuned = synth((("agent_min_tasks", "3"), ("agent_max_tasks", "9"), ("binding_max_tasks", "4")))
    bounds = sorted(
        (t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"])
        for t in resources(tuned.raw("services"), "AWS::ApplicationAutoScaling::ScalableTarget").values()
    )
    assert bounds == [(1, 4), (3, 9)]


# ---------------------------------------------------------------- shutdown timings


def _graceful_shutdown_s(service: str) -> int:
    """From the CMD of the Dockerfile's Fargate stage, which every Fargate service (`service`) runs."""
    assert (ROOT / "services" / service / "requirements.txt").is_file()
    cmd = next(line for line in dockerfile_stage("fargate").splitlines() if line.startswith("CMD "))
    args: list[str] = json.loads(cmd.removeprefix("CMD "))
    return int(args[args.index("--timeout-graceful-shutdown") + 1])


def test_uvicorn_finishes_before_the_stop_timeout_and_draining_outlasts_requests(demo: Synth) -> None:
    """ECS drains a leaving task (deregistration delay), then sends SIGTERM; uvicorn finishes what is left within its
    graceful timeout, and ECS sends SIGKILL only after the container's stop timeout."""
    template = demo.raw("services")
    groups = {
        k: int({a["Key"]: a["Value"] for a in v["Properties"]["TargetGroupAttributes"]}["deregistration_delay.timeout_seconds"])
        for k, v in resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").items()
    }
    for service, prefix in (("agent", "Agent"), ("session_binding", "SessionBinding")):
        graceful = _graceful_shutdown_s(service)
        [task] = [v for k, v in resources(template, "AWS::ECS::TaskDefinition").items() if k.startswith(prefix)]
        stop_timeout = task["Properties"]["ContainerDefinitions"][0]["StopTimeout"]
        assert graceful < stop_timeout == 30
        [drain] = [v for k, v in groups.items() if k.startswith(prefix)]
        assert drain >= graceful
        if service == "agent":  # a chat turn that started before draining ends within its own deadline
            assert drain >= settings_class("agent").model_fields["turn_timeout_s"].default


def test_health_check_is_the_constant_route(demo: Synth) -> None:
    for group in resources(demo.raw("services"), "AWS::ElasticLoadBalancingV2::TargetGroup").values():
        props = group["Properties"]
        assert (props["HealthCheckPath"], props["Matcher"]) == ("/health", {"HttpCode": "200"})
        assert props["HealthCheckTimeoutSeconds"] < props["HealthCheckIntervalSeconds"]


# ---------------------------------------------------------------- binding on Lambda


def test_binding_on_lambda_alarms_on_function_errors_and_throttles() -> None:
    template = synth(ON_LAMBDA).raw("services")
    alarms = _alarms(template)
    assert not any(k.startswith("SessionBindingUnhealthyHosts") for k in alarms)
    function = _ref_of(template, "AWS::Lambda::Function", "SessionBindingFunction")["Ref"]
    for name, metric, threshold in (("SessionBindingLambdaErrors", "Errors", 5), ("SessionBindingLambdaThrottles", "Throttles", 1)):
        alarm = _alarm(template, name)
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("AWS/Lambda", metric, "Sum", threshold)
        assert _dimensions(alarm) == {"FunctionName": "${" + function + "}"}
    assert _alarm(template, "SessionBindingTarget5xx")["MetricName"] == "HTTPCode_Target_5XX_Count"
    [target] = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()  # the agent only
    assert "Agent" in str(render(target["Properties"]["ResourceId"]))
    [service] = resources(template, "AWS::ECS::Service").values()
    assert service["Properties"]["DeploymentConfiguration"]["Alarms"]["Rollback"] is True
    function_props = template["Resources"][function]["Properties"]
    assert function_props["Environment"]["Variables"]["METRICS_NAMESPACE"] == NAMESPACE
