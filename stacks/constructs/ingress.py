"""Ingress: the internet-facing ALB, its TLS, access logs, WAF and DNS name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import (
    Aws,
    CfnCondition,
    CfnMapping,
    Duration,
    Fn,
    ICfnConditionExpression,
    Stack,
    Token,
    aws_certificatemanager as acm,
    aws_ec2 as ec2,
    aws_elasticloadbalancingv2 as elbv2,
    aws_iam as iam,
    aws_kms as kms,
    aws_route53 as route53,
    aws_route53_targets as route53_targets,
    aws_s3 as s3,
    aws_wafv2 as wafv2,
)
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from cdk_app.routes import IDLE_TIMEOUT_S, NOT_FOUND_BODY
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

ACCESS_LOG_PREFIX = "alb"


class AccessLogBucket(Construct):
    """SSE-S3 bucket for ALB access logs (ALB log delivery supports only SSE-S3), SSL only, private."""

    def __init__(self, scope: Construct, construct_id: str, *, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(lifecycle.log_retention_days),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=lifecycle.removal_policy,
            auto_delete_objects=not lifecycle.retain,
        )
        for rule, reason in (
            ("AwsSolutions-S1", "This bucket is the access-log destination itself; logging it to another bucket only moves the question."),
            (
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "This bucket is the access-log destination itself; logging it to another bucket only moves the question.",
            ),
            ("NIST.800.53.R5-S3DefaultEncryptionKMS", "ALB access log delivery supports only SSE-S3 (AES-256) buckets, not SSE-KMS."),
            (
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "Access logs are operational data with a retention period; cross-region replication is a per-organisation choice, not part of this pattern.",
            ),
        ):
            acknowledge(self.bucket, rule, reason)

    def allow_delivery_from(self, load_balancer: elbv2.ApplicationLoadBalancer, *, prefix: str) -> None:
        """Turn on access logs and let ELB log delivery write under `<prefix>/AWSLogs/<account>/`.

        CDK's `log_access_logs` needs a concrete region to pick the ELB principal; this works for
        environment-agnostic stacks too: newer regions deliver as the service principal
        `logdelivery.elasticloadbalancing.amazonaws.com`, older ones as a regional ELB account,
        chosen at deploy time from a mapping built from CDK's region facts (no network call).
        """
        stack = Stack.of(self)
        objects = self.bucket.arn_for_objects(f"{prefix}/AWSLogs/{stack.account}/*")
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                principals=[iam.ServicePrincipal("logdelivery.elasticloadbalancing.amazonaws.com")],
                resources=[objects],
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], principals=[_legacy_elb_account_principal(stack)], resources=[objects])
        )
        load_balancer.set_attribute("access_logs.s3.enabled", "true")
        load_balancer.set_attribute("access_logs.s3.bucket", self.bucket.bucket_name)
        load_balancer.set_attribute("access_logs.s3.prefix", prefix)
        policy = self.bucket.policy
        if policy is not None:
            load_balancer.node.add_dependency(policy)


def _legacy_elb_account_principal(stack: Stack) -> iam.IPrincipal:
    """The regional ELB account for regions older than August 2022; this account elsewhere."""
    region = stack.region
    accounts = {r.name: r.elbv2_account for r in RegionInfo.regions if r.elbv2_account and r.partition == "aws"}
    if not Token.is_unresolved(region):
        account = accounts.get(region) or stack.account
        return iam.AccountPrincipal(account)
    mapping = CfnMapping(stack, "ElbLogDeliveryAccounts", mapping={name: {"account": acct} for name, acct in sorted(accounts.items())})
    # Fn::Or takes at most 10 conditions: nest them in groups of ten.
    names = sorted(accounts)
    groups = [
        CfnCondition(
            stack, f"ElbLegacyRegionGroup{i}", expression=Fn.condition_or(*[Fn.condition_equals(Aws.REGION, n) for n in names[i : i + 10]])
        )
        for i in range(0, len(names), 10)
    ]
    # A CfnCondition renders as {"Condition": name} inside another condition's expression.
    is_legacy = CfnCondition(stack, "ElbLegacyRegion", expression=Fn.condition_or(*cast(list[ICfnConditionExpression], groups)))
    legacy_account = Fn.condition_if(is_legacy.logical_id, mapping.find_in_map(Aws.REGION, "account"), Aws.ACCOUNT_ID)
    return iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{Token.as_string(legacy_account)}:root")


class WebFirewall(Construct):
    """AWS WAF in front of the ALB: AWS managed rule groups, a per-IP rate limit, logs to CloudWatch."""

    def __init__(
        self, scope: Construct, construct_id: str, *, load_balancer: elbv2.ApplicationLoadBalancer, logs_key: kms.IKey, lifecycle: Lifecycle
    ) -> None:
        super().__init__(scope, construct_id)
        managed = ["AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"]
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=index,
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name, rule_action_overrides=_COUNT_ONLY.get(name)
                    )
                ),
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=_visibility(name),
            )
            for index, name in enumerate(managed)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="QueryStringSize",
                priority=len(managed),
                statement=_query_string_too_long(),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=_visibility("QueryStringSize"),
            )
        )
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RateLimitPerIp",
                priority=len(managed) + 1,
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(limit=2000, aggregate_key_type="IP")
                ),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                visibility_config=_visibility("RateLimitPerIp"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("WebAcl"),
            rules=rules,
        )
        wafv2.CfnWebACLAssociation(self, "Association", resource_arn=load_balancer.load_balancer_arn, web_acl_arn=self.web_acl.attr_arn)
        # WAF only logs to log groups whose name starts with `aws-waf-logs-`: the one physical name here.
        self.log_group = lifecycle.log_group(self, "Logs", key=logs_key, name=f"aws-waf-logs-{Stack.of(self).stack_name}")
        wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[self.log_group.log_group_arn],
            # Session cookies and the ALB's identity headers never reach the WAF log.
            # The query string too: `flow=` tokens and `session_id=` values stay out of the WAF log.
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(query_string={}),
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "cookie"}),
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "authorization"}),
            ],
        )


# Chat messages are free text posted as JSON: the common rule set's 8 KB body limit and HTML-in-body
# match would block ordinary conversations. They only count (visible in metrics and logs); the services
# bound their own request sizes and never render messages as HTML.
#
# The common rule set also blocks query strings over 2,048 bytes. The start link carries a signed flow
# token that holds AgentCore's authorization URL, its session URI and the scopes, and can pass that
# for providers with long scope names (Google's are URLs). That rule only counts too; QueryStringSize
# blocks the same 2,048 bytes everywhere else, and on /oauth2/start allows what the session binding
# service accepts (a token of at most MAX_FLOW_TOKEN_CHARS, 8,192 characters, after `flow=`).
_COUNT_ONLY = {
    "AWSManagedRulesCommonRuleSet": [
        wafv2.CfnWebACL.RuleActionOverrideProperty(name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}))
        for rule in ("SizeRestrictions_BODY", "CrossSiteScripting_BODY", "SizeRestrictions_QUERYSTRING")
    ]
}
QUERY_STRING_MAX_BYTES = 2048  # the common rule set's own limit
START_PATH = "/oauth2/start"
START_QUERY_MAX_BYTES = 8192 + 64  # services/common/flow.py MAX_FLOW_TOKEN_CHARS, `flow=`, and room to spare


def _query_string_larger_than(size: int) -> wafv2.CfnWebACL.StatementProperty:
    return wafv2.CfnWebACL.StatementProperty(
        size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(query_string={}),
            comparison_operator="GT",
            size=size,
            text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
        )
    )


def _query_string_too_long() -> wafv2.CfnWebACL.StatementProperty:
    is_start = wafv2.CfnWebACL.StatementProperty(
        byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
            field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
            positional_constraint="EXACTLY",
            search_string=START_PATH,
            text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
        )
    )
    elsewhere = wafv2.CfnWebACL.StatementProperty(
        and_statement=wafv2.CfnWebACL.AndStatementProperty(
            statements=[
                _query_string_larger_than(QUERY_STRING_MAX_BYTES),
                wafv2.CfnWebACL.StatementProperty(not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=is_start)),
            ]
        )
    )
    return wafv2.CfnWebACL.StatementProperty(
        or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=[elsewhere, _query_string_larger_than(START_QUERY_MAX_BYTES)])
    )


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True)


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
        self.security_group = ec2.SecurityGroup(self, "SecurityGroup", vpc=vpc, description="Internet-facing ALB", allow_all_outbound=False)
        if "0.0.0.0/0" in allowed_cidrs:
            acknowledge(
                self.security_group,
                "AwsSolutions-EC23",
                "allowed_ingress_cidrs includes 0.0.0.0/0: a public sign-in page; every route except /health requires Cognito sign-in at the ALB and WAF filters first.",
            )
        for cidr in allowed_cidrs:
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from an allowed network")
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), "HTTP, redirected to HTTPS")
        # The ALB itself calls Cognito's token and userInfo endpoints to authenticate users.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Cognito token and userInfo endpoints")

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

        if hosted_zone is not None:
            certificate: acm.ICertificate = acm.Certificate(
                self, "Certificate", domain_name=domain_name, validation=acm.CertificateValidation.from_dns(hosted_zone)
            )
            route53.ARecord(
                self,
                "Alias",
                zone=hosted_zone,
                record_name=domain_name + ".",
                target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.load_balancer)),
            )
        else:
            assert certificate_arn is not None
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)

        self.https_listener = self.load_balancer.add_listener(
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
