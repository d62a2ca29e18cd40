"""The session binding service's ledger: one DynamoDB table shared by every task or function instance.

Each item is one AgentCore session: completed for a user, or burned because its landing came from
another browser or user, or before AgentCore's callback. Every task (and Lambda instance) reads and
writes the same items, so single use holds across instances and restarts. Items carry `expires_at`
(epoch seconds); DynamoDB's TTL deletes them once the session could not be used anyway.

Only the binding service's role may touch the table: `statements()` is the exact grant, item calls
on the table ARN (no index, no Scan or Query) and the table key only through DynamoDB.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_grants import table_key_via_dynamodb

PARTITION_KEY = "session"
TTL_ATTRIBUTE = "expires_at"
# Item calls only, exactly those services/session_binding/ledger.py makes: it reads and conditionally writes
# single items by key; it never deletes (TTL does), lists or queries the table.
ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


class BindingLedger(Construct):
    """The ledger table (partition key `session`, TTL on `expires_at`) under its own customer managed key."""

    def __init__(self, scope: Construct, construct_id: str, *, lifecycle: Lifecycle, point_in_time_recovery: bool = True) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key = lifecycle.key(
            self, "Key", description="Encrypts the session binding ledger (completed and cancelled consent sessions)"
        )
        self.table: dynamodb.Table = lifecycle.table(
            self,
            "Table",
            key=self.key,
            partition_key=PARTITION_KEY,
            ttl_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery=point_in_time_recovery,
            sandbox_reason=(
                "Sandbox profile: ledger items outlive nothing (an hour past their session), and deleting a table with "
                "point-in-time recovery leaves a system backup for 35 days, so `cdk destroy --all` would not remove everything. "
                "The prod profile turns it on."
            ),
        )
        acknowledge(
            self.table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "Ledger items live minutes (TTL on expires_at, sessions expire at AgentCore within 10 minutes); the prod profile "
            "keeps point-in-time recovery, and an AWS Backup plan would add a vault to manage without anything worth restoring.",
        )

    def statements(self) -> list[iam.PolicyStatement]:
        """The binding service's grant: item calls on this table, and the table key only through DynamoDB."""
        return [
            iam.PolicyStatement(sid="BindingLedgerItems", actions=list(ITEM_ACTIONS), resources=[self.table.table_arn]),
            table_key_via_dynamodb(self, self.key, sid="BindingLedgerKeyViaDynamoDb"),
        ]
