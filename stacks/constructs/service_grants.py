"""IAM statements both services need: the provider's client secret (read by AgentCore on their behalf), and
KMS decrypt of the project's secrets only through Secrets Manager."""

from __future__ import annotations

from aws_cdk import Stack, aws_iam as iam, aws_kms as kms
from constructs import Construct, IConstruct

from stacks.constructs.agent_identity import ClientSecretRef
from stacks.constructs.nag import acknowledge


def decrypt_via_secrets_manager(scope: Construct, key: kms.IKey) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["kms:Decrypt"],
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(scope).region}.amazonaws.com"}},
    )


def read_client_secret(scope: Construct, secret: ClientSecretRef, secrets_key: kms.IKey) -> list[iam.PolicyStatement]:
    """AgentCore reads the OAuth client secret with the *caller's* credentials (forward access):
    without this the code exchange and refreshes fail with AccessDenied. Exactly one secret;
    KMS decrypt only through Secrets Manager in this region."""
    return [
        # Only through an AWS service (AgentCore's forward access session): task code cannot read it itself.
        iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue"],
            resources=[secret.iam_arn],
            conditions={"Bool": {"aws:ViaAWSService": "true"}},
        ),
        decrypt_via_secrets_manager(scope, secrets_key),
    ]


def acknowledge_secret_suffix(policy: IConstruct, secret: ClientSecretRef) -> None:
    """A secret known by name is granted with the `-??????` suffix Secrets Manager appends: say so to cdk-nag."""
    if secret.iam_arn.endswith("-??????"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{secret.iam_arn.split(':secret:')[1]}]",
            "The provider's client secret is named in config; '-??????' matches only the six random characters Secrets Manager appends to that one name.",
        )
