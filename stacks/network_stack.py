"""Network: a two-AZ VPC with public and private-with-egress subnets."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack, aws_ec2 as ec2
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.log_encryption import LogEncryptionKey
from stacks.constructs.nag import acknowledge


class NetworkStack(Stack):
    """The VPC every task runs in, and the key that encrypts every log group. Tasks get no public IP; they reach AWS APIs through NAT."""

    def __init__(self, scope: Construct, construct_id: str, *, nat_gateways: int, lifecycle: Lifecycle, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # Shared by every stack's log groups (passed down as a constructor argument).
        self.logs_key = LogEncryptionKey(self, "LogEncryption", lifecycle=lifecycle).key
        flow_log_group = lifecycle.log_group(self, "FlowLogs", key=self.logs_key)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            max_azs=2,
            nat_gateways=nat_gateways,
            # The default security group must allow nothing: every resource gets its own group.
            restrict_default_security_group=True,
            subnet_configuration=[
                # Public subnets hold only the ALB and NAT gateways (Elastic IPs): nothing gets a public IP on launch.
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, map_public_ip_on_launch=False),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        for subnet in self.vpc.public_subnets:
            acknowledge(
                subnet.node.find_child("DefaultRoute"),
                "NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW",
                "Public subnets exist for the internet-facing ALB and the NAT gateways; tasks run in private subnets without this route.",
            )
        flow_log_policy = self.vpc.node.find_child("all").node.find_child("IAMRole").node.find_child("DefaultPolicy")
        acknowledge(
            flow_log_policy,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK-generated policy of the flow log role: write access to the one flow log group, attached to that role only.",
        )
