"""IAM statements both services need: the providers' client secrets (read by AgentCore on their behalf), KMS
decrypt of the project's secrets only through Secrets Manager, and a table's own key only through DynamoDB."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack, aws_iam as iam, aws_kms as kms
from constructs import Construct, IConstruct

from stacks.constructs.agent_identity import ClientSecretRef
from stacks.constructs.nag import acknowledge

# A customer-managed-key table's key, for item calls: the same key actions as the demo API's notes table. DynamoDB
# refuses item writes on such a table without kms:Decrypt (aws-cdk issues 10010, 19531); whether Decrypt alone
# suffices is not documented, so the set is the one already exercised by the notes table. Assumption, checked in an
# account by a CloudTrail read of the task's KMS calls (docs/security/iam.md).
TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")


def decrypt_via_secrets_manager(scope: Construct, key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["kms:Decrypt"],
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(scope).region}.amazonaws.com"}},
    )


def table_key_via_dynamodb(scope: Construct, key: kms.IKey, *, sid: str) -> iam.PolicyStatement:
    """A table's own key, only when DynamoDB uses it on the caller's behalf (kms:ViaService in this region)."""
    return iam.PolicyStatement(
        sid=sid,
        actions=list(TABLE_KEY_ACTIONS),
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(scope).region}.amazonaws.com"}},
    )


def read_client_secrets(scope: Construct, secrets: Sequence[ClientSecretRef], secrets_key: kms.IKey) -> list[iam.PolicyStatement]:
    """AgentCore reads each provider's OAuth client secret with the *caller's* credentials (forward access):
    without this the code exchange and refreshes fail with AccessDenied. Exactly the configured providers'
    secrets, each by its ARN; KMS decrypt only through Secrets Manager in this region."""
    return [
        # Only through an AWS service (AgentCore's forward access session): task code cannot read them itself.
        iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue"],
            resources=list(dict.fromkeys(secret.iam_arn for secret in secrets)),
            conditions={"Bool": {"aws:ViaAWSService": "true"}},
        ),
        decrypt_via_secrets_manager(scope, secrets_key),
    ]


def acknowledge_secret_suffixes(policy: IConstruct, secrets: Sequence[ClientSecretRef]) -> None:
    """A secret known by name is granted with the `-??????` suffix Secrets Manager appends: say so to cdk-nag, per secret."""
    for name in dict.fromkeys(s.iam_arn.split(":secret:")[1] for s in secrets if s.iam_arn.endswith("-??????")):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{name}]",
            "The provider's client secret is named in config; '-??????' matches only the six random characters Secrets Manager appends to that one name.",
        )
