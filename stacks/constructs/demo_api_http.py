"""The demo API's HTTP API: one JWT-authorized route per operation, each needing its own scope, and a
throttled `$default` stage with access logs (no query string, token or claim in them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import (
    aws_apigateway as apigw,
    aws_apigatewayv2 as apigwv2,
    aws_apigatewayv2_authorizers as authorizers,
    aws_apigatewayv2_integrations as integrations,
    aws_kms as kms,
    aws_lambda as lambda_,
    aws_logs as logs,
)
from constructs import Construct

from cdk_app.config import DEMO_RESOURCE_SERVER_ID
from stacks.constructs.lifecycle import Lifecycle

# (method, path, scope): the API's only routes, each needing a token carrying its scope. The app's GET /health
# is left out on purpose (see the module docstring); any other path is answered 404 by API Gateway.
ROUTES = (
    (apigwv2.HttpMethod.GET, "/profile", f"{DEMO_RESOURCE_SERVER_ID}/profile.read"),
    (apigwv2.HttpMethod.GET, "/notes", f"{DEMO_RESOURCE_SERVER_ID}/notes.read"),
    (apigwv2.HttpMethod.POST, "/notes", f"{DEMO_RESOURCE_SERVER_ID}/notes.write"),
    (apigwv2.HttpMethod.GET, "/tasks", f"{DEMO_RESOURCE_SERVER_ID}/tasks.read"),
    (apigwv2.HttpMethod.POST, "/tasks", f"{DEMO_RESOURCE_SERVER_ID}/tasks.write"),
    (apigwv2.HttpMethod.POST, "/tasks/{id}/done", f"{DEMO_RESOURCE_SERVER_ID}/tasks.write"),
)
# HTTP API context variables; no query string, no token, no claim.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "authorizerError": "$context.authorizer.error",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """Where and how the stage writes access logs (an interface in CDK, so a small class in Python)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


@dataclass(frozen=True)
class DemoHttpApi:
    api: apigwv2.HttpApi
    access_logs: logs.LogGroup
    stage: apigwv2.HttpStage


def demo_http_api(
    scope: Construct,
    *,
    function: lambda_.IFunction,
    issuer: str,
    client_ids: Sequence[str],
    rate_limit: int,
    burst_limit: int,
    logs_key: kms.IKey,
    lifecycle: Lifecycle,
) -> DemoHttpApi:
    """The API, its routes to `function` and its stage, built in `scope` (the DemoApi construct)."""
    api = apigwv2.HttpApi(
        scope, "Api", description="Demo resource API (OAuth access tokens of the demo authorization server)", create_default_stage=False
    )
    # Cognito access tokens carry no `aud`: API Gateway then matches the audience against `client_id`, here any demo
    # provider's client (at most 50 audiences per authorizer, "Quotas for configuring and running an HTTP API").
    authorizer = authorizers.HttpJwtAuthorizer(
        "DemoAuthorizationServer", issuer, jwt_audience=list(client_ids), identity_source=["$request.header.Authorization"]
    )
    integration = integrations.HttpLambdaIntegration("Function", function, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0)
    for method, path, oauth_scope in ROUTES:
        api.add_routes(path=path, methods=[method], integration=integration, authorizer=authorizer, authorization_scopes=[oauth_scope])

    access_logs = lifecycle.log_group(scope, "AccessLogs", key=logs_key)
    stage = apigwv2.HttpStage(
        scope,
        "DefaultStage",
        http_api=api,
        stage_name="$default",
        auto_deploy=True,
        throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
        access_log_settings=_AccessLogSettings(
            apigwv2.LogGroupLogDestination(access_logs), apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))
        ),
    )
    return DemoHttpApi(api=api, access_logs=access_logs, stage=stage)
