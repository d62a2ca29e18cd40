"""The demo API's Lambda function: the `lambda` stage of services/Dockerfile for `services/demo_api`, its limits,
and one customer-managed policy naming exact ARNs (its own log group, the notes table and the table's key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, Stack, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_logs as logs
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_image import lambda_image


@dataclass(frozen=True)
class DemoApiFunction:
    function: lambda_.DockerImageFunction
    log_group: logs.LogGroup
    role: iam.Role
    policy: iam.ManagedPolicy


def demo_api_function(
    scope: Construct,
    *,
    environment: Mapping[str, str],
    table: dynamodb.ITable,
    table_key: kms.IKey,
    reserved_concurrency: int,
    memory_size_mib: int,
    timeout: Duration,
    logs_key: kms.IKey,
    lifecycle: Lifecycle,
) -> DemoApiFunction:
    """The function, its log group, role and policy, built in `scope` (the DemoApi construct)."""
    log_group = lifecycle.log_group(scope, "FunctionLogs", key=logs_key)
    role = iam.Role(scope, "FunctionRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description="demo API function")
    function = lambda_.DockerImageFunction(
        scope,
        "Function",
        description="Demo resource API: per-user notes, tasks and profile behind OAuth access tokens",
        code=lambda_image("demo_api"),
        architecture=lambda_.Architecture.X86_64,
        memory_size=memory_size_mib,
        timeout=timeout,
        reserved_concurrent_executions=reserved_concurrency,
        role=role,
        log_group=log_group,
        environment=dict(environment),
    )
    policy = iam.ManagedPolicy(
        scope, "FunctionPolicy", roles=[role], statements=_statements(Stack.of(scope).region, log_group, table, table_key)
    )
    function.node.add_dependency(policy)  # no cold start without its permissions
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
    return DemoApiFunction(function=function, log_group=log_group, role=role, policy=policy)


def _statements(region: str, log_group: logs.ILogGroup, table: dynamodb.ITable, table_key: kms.IKey) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(sid="OwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]),
        iam.PolicyStatement(
            sid="NotesReadWrite",
            # Query lists one user's partition; the write is a transaction of Put (note) and Update (counter).
            actions=["dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            resources=[table.table_arn],
        ),
        iam.PolicyStatement(
            sid="NotesKeyViaDynamoDb",
            actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"],
            resources=[table_key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}},
        ),
    ]
