"""One customer-managed key for every CloudWatch log group of the app."""

from __future__ import annotations

from aws_cdk import Aws, Stack, aws_iam as iam
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle


class LogEncryptionKey(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = lifecycle.key(self, "Key", description="Encrypts the CloudWatch log groups of the AgentCore ECS app")
        # CloudWatch Logs may use the key only for log groups of this account and region.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{Aws.PARTITION}:logs:{stack.region}:{stack.account}:log-group:*"
                    }
                },
            )
        )
