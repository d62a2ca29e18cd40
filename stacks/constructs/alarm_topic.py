"""The SNS topic every alarm notifies: KMS-encrypted with its own key, TLS only, optionally an email subscription."""

from __future__ import annotations

from aws_cdk import Aws, Stack, aws_iam as iam, aws_sns as sns, aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle


class AlarmTopic(Construct):
    """SNS topic for every alarm: KMS-encrypted with its own key (CloudWatch must be allowed to use it), TLS only."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Its own key: CloudWatch alarms cannot publish to a topic under the AWS managed SNS key, and the log
        # key's policy is for CloudWatch Logs only.
        self.key = lifecycle.key(self, "Key", description="Encrypts the alarm notifications of the AgentCore ECS app")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncrypt",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy: this key
            )
        )
        self.topic = sns.Topic(self, "Topic", display_name="AgentCore ECS alarms", master_key=self.key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{stack.region}:{stack.account}:alarm:*"},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
