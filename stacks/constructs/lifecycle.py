"""What happens to stateful resources when a stack is deleted, by profile."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, aws_dynamodb as dynamodb, aws_kms as kms, aws_logs as logs
from constructs import Construct

from stacks.constructs.nag import acknowledge


@dataclass(frozen=True)
class Lifecycle:
    """Profile-driven retention: `sandbox` leaves nothing behind, `prod` keeps state."""

    retain: bool
    log_retention_days: int

    @property
    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain else RemovalPolicy.DESTROY

    def log_group(self, scope: Construct, construct_id: str, *, key: kms.IKey, name: str | None = None) -> logs.LogGroup:
        """A log group encrypted with the app's key, with the profile's retention and removal policy."""
        return logs.LogGroup(
            scope, construct_id, log_group_name=name, encryption_key=key, retention=self.log_retention, removal_policy=self.removal_policy
        )

    def key(self, scope: Construct, construct_id: str, *, description: str) -> kms.Key:
        """A customer managed KMS key with yearly rotation, the profile's removal policy and deletion wait."""
        return kms.Key(
            scope,
            construct_id,
            description=description,
            enable_key_rotation=True,
            removal_policy=self.removal_policy,
            pending_window=self.key_pending_window,
        )

    def table(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        partition_key: str,
        sort_key: str | None = None,
        ttl_attribute: str | None = None,
        point_in_time_recovery: bool,
        sandbox_reason: str,
    ) -> dynamodb.Table:
        """An on-demand DynamoDB table with string keys under `key`: deletion protection and removal policy
        from the profile. Without point-in-time recovery (sandbox), its two findings are acknowledged with
        `sandbox_reason`: a table deleted with recovery on leaves a 35-day system backup behind."""
        table = dynamodb.Table(
            scope,
            construct_id,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING) if sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute=ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            deletion_protection=self.retain,
            removal_policy=self.removal_policy,
        )
        if not point_in_time_recovery:
            acknowledge(table, "AwsSolutions-DDB3", sandbox_reason)
            acknowledge(table, "NIST.800.53.R5-DynamoDBPITREnabled", sandbox_reason)
        return table

    @property
    def key_pending_window(self) -> Duration:
        """KMS waits before deleting a key: the shortest wait for sandboxes, the longest for prod."""
        return Duration.days(30 if self.retain else 7)

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.log_retention_days]


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
