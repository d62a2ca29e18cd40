"""The ALB's access log bucket, and log delivery into it from ELB in any region (environment-agnostic too)."""

from __future__ import annotations

from typing import cast

from aws_cdk import (
    Aws,
    CfnCondition,
    CfnMapping,
    Duration,
    Fn,
    ICfnConditionExpression,
    Stack,
    Token,
    aws_elasticloadbalancingv2 as elbv2,
    aws_iam as iam,
    aws_s3 as s3,
)
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge


class AccessLogBucket(Construct):
    """SSE-S3 bucket for ALB access logs (ALB log delivery supports only SSE-S3), SSL only, private."""

    def __init__(self, scope: Construct, construct_id: str, *, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(lifecycle.log_retention_days),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=lifecycle.removal_policy,
            auto_delete_objects=not lifecycle.retain,
        )
        for rule, reason in (
            ("AwsSolutions-S1", "This bucket is the access-log destination itself; logging it to another bucket only moves the question."),
            (
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "This bucket is the access-log destination itself; logging it to another bucket only moves the question.",
            ),
            ("NIST.800.53.R5-S3DefaultEncryptionKMS", "ALB access log delivery supports only SSE-S3 (AES-256) buckets, not SSE-KMS."),
            (
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "Access logs are operational data with a retention period; cross-region replication is a per-organisation choice, not part of this pattern.",
            ),
        ):
            acknowledge(self.bucket, rule, reason)

    def allow_delivery_from(self, load_balancer: elbv2.ApplicationLoadBalancer, *, prefix: str) -> None:
        """Turn on access logs and let ELB log delivery write under `<prefix>/AWSLogs/<account>/`.

        CDK's `log_access_logs` needs a concrete region to pick the ELB principal; this works for
        environment-agnostic stacks too: newer regions deliver as the service principal
        `logdelivery.elasticloadbalancing.amazonaws.com`, older ones as a regional ELB account,
        chosen at deploy time from a mapping built from CDK's region facts (no network call).
        """
        stack = Stack.of(self)
        objects = self.bucket.arn_for_objects(f"{prefix}/AWSLogs/{stack.account}/*")
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                principals=[iam.ServicePrincipal("logdelivery.elasticloadbalancing.amazonaws.com")],
                resources=[objects],
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], principals=[_legacy_elb_account_principal(stack)], resources=[objects])
        )
        load_balancer.set_attribute("access_logs.s3.enabled", "true")
        load_balancer.set_attribute("access_logs.s3.bucket", self.bucket.bucket_name)
        load_balancer.set_attribute("access_logs.s3.prefix", prefix)
        policy = self.bucket.policy
        if policy is not None:
            load_balancer.node.add_dependency(policy)


def _legacy_elb_account_principal(stack: Stack) -> iam.IPrincipal:
    """The regional ELB account for regions older than August 2022; this account elsewhere."""
    region = stack.region
    accounts = {r.name: r.elbv2_account for r in RegionInfo.regions if r.elbv2_account and r.partition == "aws"}
    if not Token.is_unresolved(region):
        account = accounts.get(region) or stack.account
        return iam.AccountPrincipal(account)
    mapping = CfnMapping(stack, "ElbLogDeliveryAccounts", mapping={name: {"account": acct} for name, acct in sorted(accounts.items())})
    # Fn::Or takes at most 10 conditions: nest them in groups of ten.
    names = sorted(accounts)
    groups = [
        CfnCondition(
            stack, f"ElbLegacyRegionGroup{i}", expression=Fn.condition_or(*[Fn.condition_equals(Aws.REGION, n) for n in names[i : i + 10]])
        )
        for i in range(0, len(names), 10)
    ]
    # A CfnCondition renders as {"Condition": name} inside another condition's expression.
    is_legacy = CfnCondition(stack, "ElbLegacyRegion", expression=Fn.condition_or(*cast(list[ICfnConditionExpression], groups)))
    legacy_account = Fn.condition_if(is_legacy.logical_id, mapping.find_in_map(Aws.REGION, "account"), Aws.ACCOUNT_ID)
    return iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{Token.as_string(legacy_account)}:root")
