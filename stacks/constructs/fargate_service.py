"""A private Fargate web service behind the ALB, reachable only from the ALB's security group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import (
    Duration,
    aws_cloudwatch as cloudwatch,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_elasticloadbalancingv2 as elbv2,
    aws_iam as iam,
    aws_kms as kms,
)
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_image import fargate_image

CONTAINER_PORT = 8080
STOP_TIMEOUT_S = 30  # keep above uvicorn's --timeout-graceful-shutdown in services/Dockerfile
CPU_TARGET_PERCENT = 60  # leaves headroom for a burst while new tasks start (about a minute on Fargate)


class FargateWebService(Construct):
    """One service: the `fargate` stage of `services/Dockerfile` for `services/<name>` (so `common/` is shared)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service_dir_name: str,
        cluster: ecs.ICluster,
        load_balancer_security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        secrets: Mapping[str, ecs.Secret],
        desired_count: int,
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
        cpu: int = 512,
        memory_limit_mib: int = 1024,
        deregistration_delay_s: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        image = fargate_image(service_dir_name)
        self.log_group = lifecycle.log_group(self, "Logs", key=logs_key)
        self.task_role = iam.Role(
            self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"), description=f"{service_dir_name} task role"
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory_limit_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        self._add_container(service_dir_name, image, environment, secrets)
        self.security_group = self._security_group(service_dir_name, cluster.vpc, load_balancer_security_group)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=desired_count,  # the scaling minimum: where a new service starts
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(30),
            enable_execute_command=False,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.target_group = self._target_group(cluster.vpc, deregistration_delay_s)
        self._acknowledge_execution_policy()

    def _add_container(
        self, service_dir_name: str, image: ecs.ContainerImage, environment: Mapping[str, str], secrets: Mapping[str, ecs.Secret]
    ) -> None:
        self.task_definition.add_volume(name="tmp")
        container = self.task_definition.add_container(
            "App",
            image=image,
            environment=dict(environment),
            secrets=dict(secrets),
            logging=ecs.LogDrivers.aws_logs(stream_prefix=service_dir_name, log_group=self.log_group),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            readonly_root_filesystem=True,
            user="10001",
            # SIGKILL this long after SIGTERM; uvicorn's --timeout-graceful-shutdown (Dockerfile) is shorter, so the
            # process finishes its requests and exits on its own. docs/operations.md, "Shutdown timings".
            stop_timeout=Duration.seconds(STOP_TIMEOUT_S),
        )
        # The root filesystem is read-only; /tmp is a task-local scratch volume.
        container.add_mount_points(ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False))  # noqa: S108
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "Environment variables hold only non-secret settings (names, URLs, ARNs); secrets arrive through ecs.Secret from Secrets Manager.",
        )

    def _security_group(self, service_dir_name: str, vpc: ec2.IVpc, load_balancer_security_group: ec2.ISecurityGroup) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(self, "SecurityGroup", vpc=vpc, description=f"{service_dir_name} tasks", allow_all_outbound=False)
        group.add_ingress_rule(load_balancer_security_group, ec2.Port.tcp(CONTAINER_PORT), "Only the ALB reaches the container port")
        # AgentCore, Bedrock, Secrets Manager, ECR and CloudWatch Logs are HTTPS endpoints reached through NAT.
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
        return group

    def _target_group(self, vpc: ec2.IVpc, deregistration_delay_s: int) -> elbv2.ApplicationTargetGroup:
        return elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[self.service],
            # Draining: in-flight requests may finish this long before ECS sends SIGTERM.
            deregistration_delay=Duration.seconds(deregistration_delay_s),
            health_check=elbv2.HealthCheck(
                path="/health",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )

    def _acknowledge_execution_policy(self) -> None:
        execution_policy = self.task_definition.obtain_execution_role().node.find_child("DefaultPolicy")
        acknowledge(
            execution_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; every other statement of the execution role names exact ARNs.",
        )
        acknowledge(
            execution_policy,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK-generated execution role policy (image pull, own log group, the signing-key secret); bound to this one role.",
        )

    def scale(self, *, min_tasks: int, max_tasks: int, requests_per_target: int) -> ecs.ScalableTaskCount:
        """Target tracking on CPU and on load balancer requests per task (call once the target group has a listener)."""
        scaling = self.service.auto_scale_task_count(min_capacity=min_tasks, max_capacity=max_tasks)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=CPU_TARGET_PERCENT,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=requests_per_target,
            target_group=self.target_group,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        return scaling

    def roll_back_on(self, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """ECS watches these alarms during a deployment and rolls back to the previous task definition when one fires."""
        self.service.enable_deployment_alarms([alarm.alarm_name for alarm in alarms], behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM)

    def allow(self, statements: Sequence[iam.PolicyStatement]) -> None:
        """The task's permissions, as one customer-managed policy (exact ARNs, reviewed as a unit)."""
        self.task_policy = iam.ManagedPolicy(self, "TaskPolicy", statements=list(statements), roles=[self.task_role])
        # Tasks start only once their permissions are attached, and stop before they are removed.
        self.service.node.add_dependency(self.task_policy)
