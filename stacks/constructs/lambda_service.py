"""A web service as an ALB Lambda target: the same app object, served by Mangum on AWS Lambda.

It offers what the services stack uses of `FargateWebService`: a target group for listener rules,
and `allow()` for its permissions, so that the stack wires either the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import (
    Duration,
    Stack,
    aws_elasticloadbalancingv2 as elbv2,
    aws_elasticloadbalancingv2_targets as elbv2_targets,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda as lambda_,
)
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_image import lambda_image


class LambdaWebService(Construct):
    """One service: the `lambda` stage of `services/Dockerfile` for `services/<name>`, as the target of one target group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service_dir_name: str,
        description: str,
        environment: Mapping[str, str],
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
        reserved_concurrency: int = 20,
        memory_size_mib: int = 512,
        timeout_s: int = 20,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = lifecycle.log_group(self, "Logs", key=logs_key)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description=description,
            code=lambda_image(service_dir_name),
            architecture=lambda_.Architecture.X86_64,
            memory_size=memory_size_mib,
            # Above AgentCore's connect + read timeouts with retries, below the ALB's idle timeout.
            timeout=Duration.seconds(timeout_s),
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            environment=dict(environment),
        )
        self.target_group = elbv2.ApplicationTargetGroup(self, "TargetGroup", targets=[elbv2_targets.LambdaTarget(self.function)])
        self._only_this_accounts_target_groups()
        # Repeated query parameters and cookies arrive as lists, as uvicorn sees them (the app refuses duplicates).
        self.target_group.set_attribute("lambda.multi_value_headers.enabled", "true")
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaDLQ",
            "Invoked synchronously by the load balancer only: a failure is answered to the browser as an error page; there are no asynchronous events to keep.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Reaches only regional AWS endpoints over TLS (AgentCore, Secrets Manager, the ALB key endpoint) and is invoked only by the load balancer; "
            "a VPC would add NAT traffic and an ec2 network-interface grant on '*' without isolating anything.",
        )

    def _only_this_accounts_target_groups(self) -> None:
        """LambdaTarget lets `elasticloadbalancing.amazonaws.com` invoke the function with no condition, so a target
        group in any account could register it. Lambda matches SourceArn with ArnLike: this account's and region's
        target groups only. (The target group's own ARN would be a cycle: it depends on this permission.)"""
        stack = Stack.of(self)
        for child in self.function.node.children:
            if isinstance(child, lambda_.CfnPermission) and child.principal == "elasticloadbalancing.amazonaws.com":
                child.source_arn = stack.format_arn(service="elasticloadbalancing", resource="targetgroup", resource_name="*")

    def allow(self, statements: Sequence[iam.PolicyStatement]) -> None:
        """The function's permissions: its own log group, plus `statements`, in one customer-managed policy."""
        own_logs = iam.PolicyStatement(
            sid="OwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]
        )
        self.task_policy = iam.ManagedPolicy(self, "Policy", statements=[own_logs, *statements], roles=[self.role])
        self.function.node.add_dependency(self.task_policy)  # no cold start without its permissions
