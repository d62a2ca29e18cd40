"""AWS WAF in front of the ALB: managed rule groups (chat bodies only counted), a query string size rule that
lets the start link's flow token through, a per-IP rate limit, and a WAF log without cookies or query strings."""

from __future__ import annotations

from aws_cdk import Stack, aws_elasticloadbalancingv2 as elbv2, aws_kms as kms, aws_wafv2 as wafv2
from constructs import Construct

from stacks.constructs.lifecycle import Lifecycle


class WebFirewall(Construct):
    """AWS WAF in front of the ALB: AWS managed rule groups, a per-IP rate limit, logs to CloudWatch."""

    def __init__(
        self, scope: Construct, construct_id: str, *, load_balancer: elbv2.ApplicationLoadBalancer, logs_key: kms.IKey, lifecycle: Lifecycle
    ) -> None:
        super().__init__(scope, construct_id)
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("WebAcl"),
            rules=_rules(),
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


def _rules() -> list[wafv2.CfnWebACL.RuleProperty]:
    """The AWS managed rule groups in order, then the query string size rule, then the per-IP rate limit."""
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
    return rules


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
