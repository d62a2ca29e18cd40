"""Ingress: the internet-facing ALB, its TLS, access logs, WAF and DNS name."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    Duration,
    aws_certificatemanager as acm,
    aws_ec2 as ec2,
    aws_elasticloadbalancingv2 as elbv2,
    aws_kms as kms,
    aws_route53 as route53,
    aws_route53_targets as route53_targets,
)
from constructs import Construct

from cdk_app.routes import IDLE_TIMEOUT_S, NOT_FOUND_BODY
from stacks.constructs.access_logs import AccessLogBucket
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge
from stacks.constructs.web_firewall import WebFirewall

ACCESS_LOG_PREFIX = "alb"


class Ingress(Construct):
    """The public entry: HTTPS only (TLS 1.2+), HTTP redirected, invalid headers dropped, fixed 404 default."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        domain_name: str,
        hosted_zone: route53.IHostedZone | None,
        certificate_arn: str | None,
        allowed_cidrs: Sequence[str],
        waf_enabled: bool,
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = self._security_group(vpc, allowed_cidrs)
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            desync_mitigation_mode=elbv2.DesyncMitigationMode.STRICTEST,
            deletion_protection=lifecycle.retain,
            idle_timeout=Duration.seconds(IDLE_TIMEOUT_S),
        )
        self.access_logs = AccessLogBucket(self, "AccessLogs", lifecycle=lifecycle)
        self.access_logs.allow_delivery_from(self.load_balancer, prefix=ACCESS_LOG_PREFIX)
        self.https_listener = self._listeners(self._certificate(domain_name, hosted_zone, certificate_arn))
        if not lifecycle.retain:
            acknowledge(
                self.load_balancer,
                "NIST.800.53.R5-ELBDeletionProtectionEnabled",
                "Sandbox profile: `cdk destroy --all` must delete the ALB. The prod profile turns deletion protection on.",
            )
        if waf_enabled:
            self.firewall: WebFirewall | None = WebFirewall(
                self, "Firewall", load_balancer=self.load_balancer, logs_key=logs_key, lifecycle=lifecycle
            )
        else:
            self.firewall = None
            acknowledge(
                self.load_balancer,
                "NIST.800.53.R5-ALBWAFEnabled",
                "WAF turned off explicitly by configuration (waf_enabled=false), for example behind an organisation-wide firewall.",
            )

    def _security_group(self, vpc: ec2.IVpc, allowed_cidrs: Sequence[str]) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(self, "SecurityGroup", vpc=vpc, description="Internet-facing ALB", allow_all_outbound=False)
        if "0.0.0.0/0" in allowed_cidrs:
            acknowledge(
                group,
                "AwsSolutions-EC23",
                "allowed_ingress_cidrs includes 0.0.0.0/0: a public sign-in page; every route except /health requires Cognito sign-in at the ALB and WAF filters first.",
            )
        for cidr in allowed_cidrs:
            group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from an allowed network")
            group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), "HTTP, redirected to HTTPS")
        # The ALB itself calls Cognito's token and userInfo endpoints to authenticate users.
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Cognito token and userInfo endpoints")
        return group

    def _certificate(self, domain_name: str, hosted_zone: route53.IHostedZone | None, certificate_arn: str | None) -> acm.ICertificate:
        """Issued and validated in the hosted zone (with an alias record to the ALB), or the configured ACM certificate."""
        if hosted_zone is None:
            assert certificate_arn is not None
            return acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
        certificate = acm.Certificate(
            self, "Certificate", domain_name=domain_name, validation=acm.CertificateValidation.from_dns(hosted_zone)
        )
        route53.ARecord(
            self,
            "Alias",
            zone=hosted_zone,
            record_name=domain_name + ".",
            target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.load_balancer)),
        )
        return certificate

    def _listeners(self, certificate: acm.ICertificate) -> elbv2.ApplicationListener:
        """HTTPS with a fixed 404 by default (the services stack adds the routes); HTTP only redirects to it."""
        https = self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.TLS13_RES,
            open=False,
            default_action=elbv2.ListenerAction.fixed_response(404, content_type="text/plain", message_body=NOT_FOUND_BODY),
        )
        http = self.load_balancer.add_listener(
            "HttpRedirect",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
        )
        acknowledge(
            http,
            "NIST.800.53.R5-ELBv2ACMCertificateRequired",
            "Port 80 only answers a permanent redirect to HTTPS; it forwards nothing, so there is no content to protect with a certificate.",
        )
        return https
