"""Optional: lets GitHub Actions of one repository deploy this app, without long-lived keys.

Built only when `github_repository` is set. GitHub's OIDC token is exchanged for a one-hour session of
a role that can do two things: assume the CDK bootstrap roles (which hold the deploy permissions
`cdk deploy` uses anyway), and read the outputs of this app's stacks for the smoke check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack, aws_iam as iam
from constructs import Construct

from stacks.constructs.nag import acknowledge

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
DEFAULT_BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_QUALIFIER_CONTEXT = "@aws-cdk/core:bootstrapQualifier"


def trusted_subjects(repository: str, branch: str, profile: str) -> list[str]:
    """OIDC `sub` claims allowed to assume the role: pushes to the deploy branch, and jobs in the profile's environment."""
    return [f"repo:{repository}:ref:refs/heads/{branch}", f"repo:{repository}:environment:{profile}"]


class GitHubDeployStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository: str,
        branch: str,
        profile: str,
        app_stack_names: Sequence[str],
        bootstrap_qualifier: str = DEFAULT_BOOTSTRAP_QUALIFIER,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # One provider per account and URL: IAM refuses a second one (see docs/ci.md).
        provider = iam.OidcProviderNative(self, "GitHubOidcProvider", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])

        self.role = iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions of {repository} deploy the {profile} profile (OIDC, no keys)",
            assumed_by=iam.WebIdentityPrincipal(
                provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": trusted_subjects(repository, branch, profile),
                    }
                },
            ),
            max_session_duration=Duration.hours(1),
        )

        self.policy = self._deploy_policy(bootstrap_qualifier, app_stack_names)
        CfnOutput(
            self,
            "DeployRoleArn",
            value=self.role.role_arn,
            description="Set as the GitHub variable AWS_DEPLOY_ROLE_ARN (docs/ci.md)",
        )

    def _deploy_policy(self, bootstrap_qualifier: str, app_stack_names: Sequence[str]) -> iam.ManagedPolicy:
        """Assume the CDK bootstrap roles of this account and region; read this app's stack outputs. Nothing else."""
        bootstrap_roles = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-{bootstrap_qualifier}-*-{Aws.ACCOUNT_ID}-{Aws.REGION}"
        stack_arns = [f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:stack/{name}/*" for name in app_stack_names]
        policy = iam.ManagedPolicy(
            self,
            "DeployPolicy",
            description="Assume the CDK bootstrap roles; read this app's stack outputs",
            roles=[self.role],
            statements=[
                # deploy, file-publishing, image-publishing and lookup roles of this account and region.
                iam.PolicyStatement(sid="UseCdkBootstrapRoles", actions=["sts:AssumeRole", "sts:TagSession"], resources=[bootstrap_roles]),
                iam.PolicyStatement(sid="ReadAppStackOutputs", actions=["cloudformation:DescribeStacks"], resources=stack_arns),
            ],
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/cdk-{bootstrap_qualifier}-*-<AWS::AccountId>-<AWS::Region>]",
            "The CDK CLI assumes the four bootstrap roles of this account and region (deploy, file and image publishing, lookup); "
            "'*' stands for those role kinds under the bootstrap qualifier only.",
        )
        for name in app_stack_names:
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/{name}/*]",
                "A stack ARN ends in an id CloudFormation generates at creation; '*' matches that id of this one named stack only.",
            )
        return policy
