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

from collections.abc import Sequence

from aws_cdk import Duration, aws_dynamodb as dynamodb, aws_kms as kms
from constructs import Construct

import services.common.environment as env
from stacks.constructs.demo_api_function import demo_api_function
from stacks.constructs.demo_api_http import demo_http_api
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge


class DemoApi(Construct):
    """`services/demo_api` on Lambda (the `lambda` stage of services/Dockerfile), its HTTP API and notes table.

    `url` is the API's base URL (no trailing slash), the `api_url` of each demo provider in the agent's `PROVIDERS`.
    `client_ids` are the demo providers' app clients: a token issued to any of them is accepted (`DEMO_CLIENT_IDS`).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        issuer: str,
        client_ids: Sequence[str],
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
        self.table_key, self.table = self._build_table(point_in_time_recovery=point_in_time_recovery, lifecycle=lifecycle)
        built = demo_api_function(
            self,
            environment={
                env.APP_PROFILE: app_profile,
                env.DEMO_ISSUER: issuer,
                env.DEMO_CLIENT_IDS: " ".join(client_ids),
                env.NOTES_TABLE: self.table.table_name,
                env.LOG_LEVEL: "INFO",
            },
            table=self.table,
            table_key=self.table_key,
            reserved_concurrency=reserved_concurrency,
            memory_size_mib=memory_size_mib,
            # Key fetch (2 s) plus DynamoDB's worst case (3 attempts of 1 s connect + 2 s read), with room to spare.
            timeout=timeout or Duration.seconds(15),
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.function, self.log_group, self.role, self.policy = built.function, built.log_group, built.role, built.policy
        http = demo_http_api(
            self,
            function=self.function,
            issuer=issuer,
            client_ids=client_ids,
            rate_limit=throttle_rate_limit,
            burst_limit=throttle_burst_limit,
            logs_key=logs_key,
            lifecycle=lifecycle,
        )
        self.api, self.access_logs, self.stage = http.api, http.access_logs, http.stage
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
