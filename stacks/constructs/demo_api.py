"""The demo resource API: a container-image Lambda function behind an API Gateway HTTP API, and its notes table.

Why Lambda behind API Gateway rather than a third Fargate service on the ALB: the API is called a few
times per chat turn, so it costs nothing while idle, and its access tokens are not the ALB's Cognito
sign-in, so it would need its own listener rules anyway. The HTTP API's JWT authorizer turns away
requests without a valid token of the demo authorization server before the function runs (and before
they count against its reserved concurrency); the function verifies every token again itself.

Every route has the authorizer; there is deliberately no unauthenticated route (not even the app's
`/health`): anonymous requests would share the stage throttle and the function's reserved concurrency
with the agent's tool calls and could starve them.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import (
    Duration,
    Stack,
    aws_apigateway as apigw,
    aws_apigatewayv2 as apigwv2,
    aws_apigatewayv2_authorizers as authorizers,
    aws_apigatewayv2_integrations as integrations,
    aws_dynamodb as dynamodb,
    aws_ecr_assets as ecr_assets,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda as lambda_,
)
from constructs import Construct

from stacks.constructs.auth import DEMO_RESOURCE_SERVER_ID
from stacks.constructs.fargate_service import ASSET_EXCLUDES, SERVICES_DIR
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

# (method, path, scope): the API's only routes, each needing a token carrying its scope. The app's GET /health
# is left out on purpose (see the module docstring); any other path is answered 404 by API Gateway.
ROUTES = (
    (apigwv2.HttpMethod.GET, "/profile", f"{DEMO_RESOURCE_SERVER_ID}/profile.read"),
    (apigwv2.HttpMethod.GET, "/notes", f"{DEMO_RESOURCE_SERVER_ID}/notes.read"),
    (apigwv2.HttpMethod.POST, "/notes", f"{DEMO_RESOURCE_SERVER_ID}/notes.write"),
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


class DemoApi(Construct):
    """`services/demo_api` on Lambda (image from its Dockerfile, build context `services/`), its HTTP API and table.

    `url` is the API's base URL (no trailing slash), for the agent's `DEMO_API_URL`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        issuer: str,
        client_id: str,
        app_profile: str,
        point_in_time_recovery: bool,
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
        reserved_concurrency: int = 5,
        memory_size_mib: int = 512,
        timeout: Duration | None = None,
        throttle_rate_limit: int = 20,
        throttle_burst_limit: int = 40,
    ) -> None:
        super().__init__(scope, construct_id)
        dockerfile = SERVICES_DIR / "demo_api" / "Dockerfile"
        if not dockerfile.is_file():
            raise FileNotFoundError(f"{dockerfile} is missing")

        self.table_key, self.table = self._build_table(point_in_time_recovery=point_in_time_recovery, lifecycle=lifecycle)
        self.function = self._build_function(
            environment={
                "APP_PROFILE": app_profile,
                "DEMO_ISSUER": issuer,
                "DEMO_CLIENT_ID": client_id,
                "NOTES_TABLE": self.table.table_name,
                "LOG_LEVEL": "INFO",
            },
            reserved_concurrency=reserved_concurrency,
            memory_size_mib=memory_size_mib,
            # Key fetch (2 s) plus DynamoDB's worst case (3 attempts of 1 s connect + 2 s read), with room to spare.
            timeout=timeout or Duration.seconds(15),
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.api = self._build_api(
            issuer=issuer,
            client_id=client_id,
            rate_limit=throttle_rate_limit,
            burst_limit=throttle_burst_limit,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.url: str = self.api.api_endpoint

    def _build_table(self, *, point_in_time_recovery: bool, lifecycle: Lifecycle) -> tuple[kms.Key, dynamodb.Table]:
        key = lifecycle.key(self, "TableKey", description="Encrypts the demo API's notes table")
        table = lifecycle.table(
            self,
            "Notes",
            key=key,
            partition_key="sub",
            sort_key="id",
            point_in_time_recovery=point_in_time_recovery,
            sandbox_reason=(
                "Sandbox profile: the notes are disposable test data, and deleting a table with point-in-time recovery leaves a "
                "system backup for 35 days, so `cdk destroy --all` would not remove everything. The prod profile turns it on."
            ),
        )
        acknowledge(
            table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "Notes are demo data the agent writes for test users; the prod profile keeps the table (Retain, deletion protection) "
            "with 35 days of point-in-time recovery, and an AWS Backup plan would add a vault to manage without a better restore.",
        )
        return key, table

    def _build_function(
        self,
        *,
        environment: dict[str, str],
        reserved_concurrency: int,
        memory_size_mib: int,
        timeout: Duration,
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
    ) -> lambda_.DockerImageFunction:
        self.log_group = lifecycle.log_group(self, "FunctionLogs", key=logs_key)
        self.role = iam.Role(self, "FunctionRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description="demo API function")
        function = lambda_.DockerImageFunction(
            self,
            "Function",
            description="Demo resource API: per-user notes and profile behind OAuth access tokens",
            # Built for the function's architecture wherever `cdk deploy` runs (an arm64 laptop included).
            code=lambda_.DockerImageCode.from_image_asset(
                str(SERVICES_DIR), file="demo_api/Dockerfile", exclude=ASSET_EXCLUDES, platform=ecr_assets.Platform.LINUX_AMD64
            ),
            architecture=lambda_.Architecture.X86_64,
            memory_size=memory_size_mib,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            environment=environment,
        )
        # One customer-managed policy naming exact ARNs: its own log group, the table and the table's key.
        self.policy = iam.ManagedPolicy(
            self,
            "FunctionPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="OwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]
                ),
                iam.PolicyStatement(
                    sid="NotesReadWrite",
                    # Query lists one user's partition; the write is a transaction of Put (note) and Update (counter).
                    actions=["dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                    resources=[self.table.table_arn],
                ),
                iam.PolicyStatement(
                    sid="NotesKeyViaDynamoDb",
                    actions=[
                        "kms:Decrypt",
                        "kms:Encrypt",
                        "kms:GenerateDataKey",
                        "kms:ReEncryptFrom",
                        "kms:ReEncryptTo",
                        "kms:DescribeKey",
                    ],
                    resources=[self.table_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}},
                ),
            ],
        )
        function.node.add_dependency(self.policy)  # no cold start without its permissions
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaDLQ",
            "Invoked synchronously by API Gateway only: a failure is answered to the caller as an error; there are no asynchronous events to keep.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Reaches only regional AWS endpoints (DynamoDB, Cognito's key set) over TLS and is invoked only by API Gateway; "
            "a VPC would add NAT traffic and an ec2 network-interface grant on '*' without isolating anything.",
        )
        return function

    def _build_api(
        self, *, issuer: str, client_id: str, rate_limit: int, burst_limit: int, logs_key: kms.IKey, lifecycle: Lifecycle
    ) -> apigwv2.HttpApi:
        api = apigwv2.HttpApi(
            self, "Api", description="Demo resource API (OAuth access tokens of the demo authorization server)", create_default_stage=False
        )
        # Cognito access tokens carry no `aud`: API Gateway then matches the audience against `client_id`.
        authorizer = authorizers.HttpJwtAuthorizer(
            "DemoAuthorizationServer", issuer, jwt_audience=[client_id], identity_source=["$request.header.Authorization"]
        )
        integration = integrations.HttpLambdaIntegration(
            "Function", self.function, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0
        )
        for method, path, scope in ROUTES:
            api.add_routes(path=path, methods=[method], integration=integration, authorizer=authorizer, authorization_scopes=[scope])

        self.access_logs = lifecycle.log_group(self, "AccessLogs", key=logs_key)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs), apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))
            ),
        )
        return api
