"""The variables the stacks set on each service are ones that service reads (services/common/environment.py), and
each service gets every variable its settings class cannot start without; for the default app and the shape with
the session binding service on Lambda."""

from __future__ import annotations

from typing import Any

import pytest

import services.common.environment as env
from tests.stacks.conftest import Synth, one, required_variables, resources, synth

SHAPES = {"default": (), "binding-on-lambda": (("binding_compute", "lambda"),)}
READS = {"agent": env.AGENT, "session_binding": env.SESSION_BINDING, "demo_api": env.DEMO_API}
SET_BY_THE_PLATFORM = {env.AWS_REGION}  # ECS and Lambda set it for every task and function


def _container(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    [task] = [t for k, t in resources(template, "AWS::ECS::TaskDefinition").items() if k.startswith(prefix)]
    container: dict[str, Any] = task["Properties"]["ContainerDefinitions"][0]
    return container


def variables_set(synthesized: Synth, service: str) -> set[str]:
    """Names in the service's environment, and (ECS) the secrets injected as variables."""
    template = synthesized.raw("services")
    if service == "demo_api" or (service == "session_binding" and synthesized.config.binding_compute.value == "lambda"):
        function = one(template, "AWS::Lambda::Function", "DemoApiFunction" if service == "demo_api" else "SessionBindingFunction")
        return set(function["Properties"]["Environment"]["Variables"])
    container = _container(template, "Agent" if service == "agent" else "SessionBinding")
    return {e["Name"] for e in container["Environment"]} | {s["Name"] for s in container.get("Secrets", [])}


@pytest.mark.parametrize("service", sorted(READS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_variable_set_is_one_the_service_reads(shape: str, service: str) -> None:
    names = variables_set(synth(SHAPES[shape]), service)
    assert not names - READS[service], f"{service} gets variables it does not read: {sorted(names - READS[service])}"


@pytest.mark.parametrize("service", sorted(READS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_service_gets_every_variable_its_settings_require(shape: str, service: str) -> None:
    names = variables_set(synth(SHAPES[shape]), service)
    missing = required_variables(service) - SET_BY_THE_PLATFORM - names
    assert not missing, f"{service} cannot start without {sorted(missing)}"


def test_the_shapes_put_the_binding_service_where_expected() -> None:
    """The two shapes above cover both computes: ECS tasks (secret injected) and a Lambda function (secret ARN)."""
    assert env.FLOW_SIGNING_KEYS in variables_set(synth(SHAPES["default"]), "session_binding")
    on_lambda = variables_set(synth(SHAPES["binding-on-lambda"]), "session_binding")
    assert env.FLOW_SIGNING_KEYS_SECRET_ARN in on_lambda and env.FLOW_SIGNING_KEYS not in on_lambda
