"""The connections registry's table: which outbound accounts each person has connected (services/common/connections.py).

One item per person and provider (partition key `user`, sort key `provider`), holding status, scopes and dates,
never a token. Items have no TTL: a record stays until the person's data is removed, because a disconnect must
outlive any consent link issued before it. Both services share the table, each with its own exact grant:

- the session binding service records a completed consent: `UpdateItem` only (`for_session_binding()`);
- the agent lists, reads and records use and disconnects: `GetItem`, `Query`, `UpdateItem` (`for_agent()`).

Both on the table ARN only (no index, no Scan, no batch call, no PutItem or DeleteItem), and the table's own key
only through DynamoDB, as the binding ledger's (stacks/constructs/binding_ledger.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_grants import table_key_via_dynamodb

PARTITION_KEY = "user"
SORT_KEY = "provider"
# Exactly the calls services/common/connections.py makes for each service: every write is one conditional
# UpdateItem (which also creates a missing record); the agent reads one record, or one person's partition.
BINDING_ACTIONS = ("dynamodb:UpdateItem",)
AGENT_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem")


class ConnectionsTable(Construct):
    """The registry table (partition key `user`, sort key `provider`, no TTL) under its own customer managed key."""

    def __init__(self, scope: Construct, construct_id: str, *, lifecycle: Lifecycle, point_in_time_recovery: bool = True) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key = lifecycle.key(
            self, "Key", description="Encrypts the connections registry (which accounts each person connected, no tokens)"
        )
        self.table: dynamodb.Table = lifecycle.table(
            self,
            "Table",
            key=self.key,
            partition_key=PARTITION_KEY,
            sort_key=SORT_KEY,
            point_in_time_recovery=point_in_time_recovery,
            sandbox_reason=(
                "Sandbox profile: the registry of a demo is disposable, and deleting a table with point-in-time recovery "
                "leaves a system backup for 35 days, so `cdk destroy --all` would not remove everything. "
                "The prod profile turns it on."
            ),
        )
        acknowledge(
            self.table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "The prod profile keeps point-in-time recovery (any second of the last 35 days) and retains the table with deletion "
            "protection; the items are a few small status records per person, and an AWS Backup plan would add a vault to manage.",
        )

    def for_agent(self) -> list[iam.PolicyStatement]:
        """The agent's grant: read one record or one person's records, and record use and disconnects."""
        return self._statements(AGENT_ACTIONS)

    def for_session_binding(self) -> list[iam.PolicyStatement]:
        """The session binding service's grant: record a completed consent, nothing else."""
        return self._statements(BINDING_ACTIONS)

    def _statements(self, actions: Sequence[str]) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(sid="ConnectionsItems", actions=list(actions), resources=[self.table.table_arn]),
            table_key_via_dynamodb(self, self.key, sid="ConnectionsKeyViaDynamoDb"),
        ]
