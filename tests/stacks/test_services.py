"""Services stack: ingress, routing, network isolation, task settings and least privilege."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from aws_cdk.assertions import Match

from services.common.flow import MAX_FLOW_TOKEN_CHARS
from tests.stacks.conftest import CERT, Synth, as_list, one, render, resources, settings_class, statements, synth

AGENTCORE = "arn:${AWS::Partition}:bedrock-agentcore:${AWS::Region}:${AWS::AccountId}"
DIRECTORY = f"{AGENTCORE}:workload-identity-directory/default"
WORKLOAD = f"{DIRECTORY}/workload-identity/agentcore-ecs-sandbox-agent"
VAULT = f"{AGENTCORE}:token-vault/default"
PROVIDERS = [
    f"{VAULT}/oauth2credentialprovider/agentcore-ecs-sandbox-notes",
    f"{VAULT}/oauth2credentialprovider/agentcore-ecs-sandbox-tasks",
]
LEDGER_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
VIA_DYNAMODB = {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}}
VIA_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": "secretsmanager.${AWS::Region}.amazonaws.com"}}


def _rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    rules = [r["Properties"] for r in resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values()]
    return sorted(rules, key=lambda r: r["Priority"])


def _target_of(rule: dict[str, Any]) -> str:
    forward = [a for a in rule["Actions"] if a["Type"] == "forward"]
    return str(forward[0]["TargetGroupArn"]["Ref"])


def test_https_listener_tls12_plus_with_fixed_404_default(demo: Synth) -> None:
    demo.template("services").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
            "DefaultActions": [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not found"},
                }
            ],
        },
    )


def test_http_only_redirects_to_https(demo: Synth) -> None:
    demo.template("services").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}],
        },
    )


def test_alb_drops_invalid_headers_and_logs_access(demo: Synth) -> None:
    lb = one(demo.raw("services"), "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    attributes = {a["Key"]: render(a["Value"]) for a in lb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["routing.http.desync_mitigation_mode"] == "strictest"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"].startswith("${IngressAccessLogsBucket")
    assert attributes["deletion_protection.enabled"] == "false"
    assert lb["Scheme"] == "internet-facing"


def test_listener_rules_route_binding_paths_and_authenticate_before_forwarding(demo: Synth) -> None:
    rules = _rules(demo.raw("services"))
    assert [r["Priority"] for r in rules] == [5, 7, 10, 20, 30]
    health, signed_out, binding, api, ui = rules

    assert health["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/health"]}},
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
    ]
    assert [a["Type"] for a in health["Actions"]] == ["forward"]
    # The page the sign-in pool's logout returns to, and its stylesheet: no session needed, GET only.
    assert signed_out["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/signed-out", "/static/app.css", "/static/favicon.svg"]}},
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
    ]
    assert [a["Type"] for a in signed_out["Actions"]] == ["forward"] and _target_of(signed_out).startswith("AgentTargetGroup")

    assert binding["Conditions"] == [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/oauth2/start", "/oauth2/session-binding"]}}
    ]
    assert _target_of(binding).startswith("SessionBindingTargetGroup")
    assert api["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]
    assert ui["Conditions"][0]["PathPatternConfig"]["Values"] == ["/*"]
    for rule in (api, ui):
        assert _target_of(rule).startswith("AgentTargetGroup")

    for rule, unauthenticated in ((binding, "authenticate"), (api, "deny"), (ui, "authenticate")):
        actions = sorted(rule["Actions"], key=lambda a: a["Order"])
        assert [a["Type"] for a in actions] == ["authenticate-cognito", "forward"]
        cognito = actions[0]["AuthenticateCognitoConfig"]
        assert cognito["OnUnauthenticatedRequest"] == unauthenticated
        assert render(cognito["UserPoolClientId"]).startswith("${Import:")


def test_service_security_groups_admit_only_the_alb(demo: Synth) -> None:
    template = demo.raw("services")
    alb_sg = next(k for k in resources(template, "AWS::EC2::SecurityGroup") if k.startswith("IngressSecurityGroup"))
    for name in ("Agent", "SessionBinding"):
        group = next(k for k in resources(template, "AWS::EC2::SecurityGroup") if k.startswith(f"{name}SecurityGroup"))
        inline = template["Resources"][group]["Properties"]
        assert "SecurityGroupIngress" not in inline
        ingress = [
            r["Properties"]
            for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
        ]
        assert ingress == [
            {
                "Description": "Only the ALB reaches the container port",
                "FromPort": 8080,
                "ToPort": 8080,
                "IpProtocol": "tcp",
                "GroupId": {"Fn::GetAtt": [group, "GroupId"]},
                "SourceSecurityGroupId": {"Fn::GetAtt": [alb_sg, "GroupId"]},
            }
        ]
        assert inline["SecurityGroupEgress"] == [
            {"CidrIp": "0.0.0.0/0", "Description": "HTTPS to AWS APIs", "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}
        ]


def test_alb_accepts_only_configured_networks() -> None:
    narrow = synth((("allowed_ingress_cidrs", "203.0.113.0/24"),))
    group = one(narrow.raw("services"), "AWS::EC2::SecurityGroup", "IngressSecurityGroup")["Properties"]
    assert {(r["CidrIp"], r["FromPort"]) for r in group["SecurityGroupIngress"]} == {("203.0.113.0/24", 443), ("203.0.113.0/24", 80)}


def test_tasks_run_private_without_public_ip_with_rollback(demo: Synth) -> None:
    services = resources(demo.raw("services"), "AWS::ECS::Service")
    assert len(services) == 2
    for service in services.values():
        props = service["Properties"]
        assert props["LaunchType"] == "FARGATE"
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
        subnets = [render(s) for s in props["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]]
        assert all("privateSubnet" in s for s in subnets)
        deployment = props["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert deployment["MinimumHealthyPercent"] == 100
        assert props["EnableExecuteCommand"] is False


def test_target_groups_check_health_on_health(demo: Synth) -> None:
    groups = resources(demo.raw("services"), "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == 2
    for name, group in groups.items():
        props = group["Properties"]
        assert props["HealthCheckPath"] == "/health"
        assert props["TargetType"] == "ip" and props["Port"] == 8080
        attributes = {a["Key"]: a["Value"] for a in props["TargetGroupAttributes"]}
        # Draining outlasts the longest request of each service (tests/stacks/test_operations.py has the reasoning).
        assert attributes["deregistration_delay.timeout_seconds"] == ("180" if name.startswith("Agent") else "30")


def test_containers_are_non_root_read_only_with_secrets_not_environment(demo: Synth) -> None:
    for task in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").values():
        [container] = task["Properties"]["ContainerDefinitions"]
        assert container["User"] == "10001"
        assert container["ReadonlyRootFilesystem"] is True
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        names = {e["Name"] for e in container["Environment"]}
        assert "FLOW_SIGNING_KEYS" not in names
        assert [s["Name"] for s in container["Secrets"]] == ["FLOW_SIGNING_KEYS"]
        assert render(container["Secrets"][0]["ValueFrom"]).startswith("${Import:")
        assert task["Properties"]["RequiresCompatibilities"] == ["FARGATE"]


def test_service_log_groups_are_encrypted_with_retention(demo: Synth) -> None:
    groups = resources(demo.raw("services"), "AWS::Logs::LogGroup")
    assert len(groups) == 6  # agent, session binding, WAF, Container Insights, demo API function and access logs
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert render(group["Properties"]["KmsKeyId"]).startswith("${Import:")


def test_cluster_has_container_insights_in_a_log_group_the_stack_owns(demo: Synth) -> None:
    demo.template("services").has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enhanced"}]}
    )
    [insights] = [
        g
        for g in resources(demo.raw("services"), "AWS::Logs::LogGroup").values()
        if "LogGroupName" in g["Properties"] and "containerinsights" in str(g["Properties"]["LogGroupName"])
    ]
    assert render(insights["Properties"]["LogGroupName"]) == "/aws/ecs/containerinsights/${ClusterEB0386A7}/performance"


def test_images_are_built_for_the_task_architecture(demo: Synth) -> None:
    assets = json.loads((demo.outdir / "Services.assets.json").read_text())
    platforms = [a["source"].get("platform") for a in assets["dockerImages"].values()]
    assert platforms == ["linux/amd64"] * 3  # agent, session binding, demo API
    for task in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").values():
        assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "X86_64"


def test_services_start_after_their_task_policy(demo: Synth) -> None:
    template = demo.raw("services")
    for name in ("Agent", "SessionBinding"):
        service = next(v for k, v in resources(template, "AWS::ECS::Service").items() if k.startswith(f"{name}Service"))
        policy = next(k for k in resources(template, "AWS::IAM::ManagedPolicy") if k.startswith(f"{name}TaskPolicy"))
        assert policy in service["DependsOn"]


def test_access_log_bucket_is_sse_s3_ssl_only_and_private(demo: Synth) -> None:
    template = demo.template("services")
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    policy = one(demo.raw("services"), "AWS::S3::BucketPolicy")
    stmts = statements(policy)
    deny = [s for s in stmts if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny[0]["Action"] == "s3:*"
    writes = [s for s in stmts if s["Effect"] == "Allow" and s["Action"] == "s3:PutObject"]
    assert len(writes) == 1
    assert writes[0]["Principal"]["Service"] == "logdelivery.elasticloadbalancing.amazonaws.com"
    assert writes[0]["Resource"].endswith("/alb/AWSLogs/${AWS::AccountId}/*")


def test_legacy_region_log_delivery_account_comes_from_cdk_region_facts(demo: Synth) -> None:
    template = demo.raw("services")
    mapping = template["Mappings"]["ElbLogDeliveryAccounts"]
    assert mapping["us-east-1"] == {"account": "127311923021"}
    assert mapping["eu-west-1"] == {"account": "156460612806"}
    assert "ElbLegacyRegion" in template["Conditions"]


def test_region_specific_synth_uses_the_regional_account() -> None:
    pinned = synth((("account", "111122223333"), ("region", "us-east-1")))
    policy = one(pinned.raw("services"), "AWS::S3::BucketPolicy")
    writes = [s for s in statements(policy) if s["Effect"] == "Allow" and s["Action"] == "s3:PutObject"]
    assert writes[0]["Principal"]["AWS"] == "arn:${AWS::Partition}:iam::127311923021:root"
    assert "Mappings" not in pinned.raw("services")


def test_waf_with_managed_rules_and_rate_limit_is_attached(demo: Synth) -> None:
    template = demo.raw("services")
    acl = one(template, "AWS::WAFv2::WebACL")["Properties"]
    names = [r["Name"] for r in acl["Rules"]]
    common = next(r for r in acl["Rules"] if r["Name"] == "AWSManagedRulesCommonRuleSet")
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert sorted((o["Name"], o["ActionToUse"]) for o in overrides) == [
        ("CrossSiteScripting_BODY", {"Count": {}}),
        ("SizeRestrictions_BODY", {"Count": {}}),
        ("SizeRestrictions_QUERYSTRING", {"Count": {}}),
    ]
    assert names == [
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "QueryStringSize",
        "RateLimitPerIp",
    ]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    association = one(template, "AWS::WAFv2::WebACLAssociation")["Properties"]
    assert association["ResourceArn"]["Ref"].startswith("IngressLoadBalancer")
    logging = one(template, "AWS::WAFv2::LoggingConfiguration")["Properties"]
    assert {"SingleHeader": {"Name": "cookie"}} in logging["RedactedFields"]
    assert {"QueryString": {}} in logging["RedactedFields"], "flow tokens and session ids stay out of the WAF log"


def test_waf_lets_every_start_link_the_binding_service_accepts_through(demo: Synth) -> None:
    """The common rule set blocks query strings over 2,048 bytes; a start link may be longer."""
    rule = next(r for r in one(demo.raw("services"), "AWS::WAFv2::WebACL")["Properties"]["Rules"] if r["Name"] == "QueryStringSize")
    assert rule["Action"] == {"Block": {}}
    elsewhere, anywhere = rule["Statement"]["OrStatement"]["Statements"]
    size, not_start = elsewhere["AndStatement"]["Statements"]
    assert size["SizeConstraintStatement"]["Size"] == 2048 and size["SizeConstraintStatement"]["FieldToMatch"] == {"QueryString": {}}
    start = not_start["NotStatement"]["Statement"]["ByteMatchStatement"]
    assert start["SearchString"] == "/oauth2/start" and start["PositionalConstraint"] == "EXACTLY"
    assert anywhere["SizeConstraintStatement"]["Size"] >= len("flow=") + MAX_FLOW_TOKEN_CHARS


def test_waf_off_removes_it() -> None:
    off = synth((("waf_enabled", "false"),))
    assert not resources(off.raw("services"), "AWS::WAFv2::WebACL")


def test_dns_alias_and_certificate_from_hosted_zone(demo: Synth) -> None:
    template = demo.template("services")
    template.has_resource_properties(
        "AWS::CertificateManager::Certificate",
        {
            "DomainName": "agent.example.com",
            "ValidationMethod": "DNS",
            "DomainValidationOptions": [{"DomainName": "agent.example.com", "HostedZoneId": "Z0000000000EXAMPLE000"}],
        },
    )
    template.has_resource_properties(
        "AWS::Route53::RecordSet",
        {"Name": "agent.example.com.", "Type": "A", "HostedZoneId": "Z0000000000EXAMPLE000", "AliasTarget": Match.any_value()},
    )


def test_imported_certificate_needs_no_zone() -> None:
    with_cert = synth(CERT)
    raw = with_cert.raw("services")
    assert not resources(raw, "AWS::CertificateManager::Certificate")
    assert not resources(raw, "AWS::Route53::RecordSet")
    listener = next(x for x in resources(raw, "AWS::ElasticLoadBalancingV2::Listener").values() if x["Properties"]["Port"] == 443)
    assert listener["Properties"]["Certificates"] == [{"CertificateArn": dict(CERT)["certificate_arn"]}]


# ---------------------------------------------------------------- IAM, per role


def _task_policy(synth_: Synth, service: str) -> list[dict[str, Any]]:
    return statements(one(synth_.raw("services"), "AWS::IAM::ManagedPolicy", f"{service}TaskPolicy"))


def _by_action(stmts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for statement in stmts:
        for action in as_list(statement["Action"]):
            found.setdefault(action, []).append(statement)
    return found


def test_agent_role_gets_workload_tokens_outbound_tokens_and_its_model_only(demo: Synth) -> None:
    stmts = _task_policy(demo, "Agent")
    actions = _by_action(stmts)
    assert set(actions) == {
        "bedrock-agentcore:GetWorkloadAccessTokenForUserId",
        "bedrock-agentcore:GetResourceOauth2Token",
        "secretsmanager:GetSecretValue",
        "bedrock:InvokeModel",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        *TABLE_KEY_ACTIONS,
    }
    [workload] = actions["bedrock-agentcore:GetWorkloadAccessTokenForUserId"]
    assert sorted(as_list(workload["Resource"])) == sorted([DIRECTORY, WORKLOAD])
    [outbound] = actions["bedrock-agentcore:GetResourceOauth2Token"]
    assert sorted(as_list(outbound["Resource"])) == sorted([DIRECTORY, WORKLOAD, VAULT, *PROVIDERS])
    [secret] = actions["secretsmanager:GetSecretValue"]
    # Each demo provider's own client secret, by its exact ARN.
    assert len(as_list(secret["Resource"])) == 2
    for name, arn in zip(("Notes", "Tasks"), as_list(secret["Resource"]), strict=True):
        assert arn.startswith("${Import:") and f"AgentCoreClient{name}ClientSecret" in arn
    assert secret["Condition"] == {"Bool": {"aws:ViaAWSService": "true"}}
    # Two keys: the secrets key only through Secrets Manager; the connections registry's only through DynamoDB.
    via_secrets_manager, via_dynamodb = sorted(actions["kms:Decrypt"], key=lambda d: d["Condition"] != VIA_SECRETS_MANAGER)
    assert via_secrets_manager["Condition"] == VIA_SECRETS_MANAGER and str(via_secrets_manager["Resource"]).startswith("${Import:")
    assert via_secrets_manager["Action"] == "kms:Decrypt"
    table, key = _connections_ids(demo)
    assert via_dynamodb == {
        "Sid": "ConnectionsKeyViaDynamoDb",
        "Effect": "Allow",
        "Action": list(TABLE_KEY_ACTIONS),
        "Resource": "${" + key + ".Arn}",
        "Condition": VIA_DYNAMODB,
    }
    [registry] = actions["dynamodb:Query"]
    assert registry == {
        "Sid": "ConnectionsItems",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
        "Resource": "${" + table + ".Arn}",
    }
    [model] = actions["bedrock:InvokeModel"]
    assert sorted(as_list(model["Resource"])) == sorted(
        [
            "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        ]
    )
    assert all(s["Effect"] == "Allow" for s in stmts)
    assert not any(r == "*" for s in stmts for r in as_list(s["Resource"]))


def test_plain_model_id_gets_one_regional_model_arn() -> None:
    plain = synth((("bedrock_model_id", "anthropic.claude-3-5-haiku-20241022-v1:0"),))
    model = _by_action(_task_policy(plain, "Agent"))["bedrock:InvokeModel"][0]
    assert as_list(model["Resource"]) == [
        "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
    ]


def test_session_binding_role_can_only_complete_consent_and_use_its_ledger(demo: Synth) -> None:
    actions = _by_action(_task_policy(demo, "SessionBinding"))
    assert set(actions) == {
        "bedrock-agentcore:CompleteResourceTokenAuth",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        *LEDGER_ITEM_ACTIONS,
    }
    [complete] = actions["bedrock-agentcore:CompleteResourceTokenAuth"]
    assert sorted(as_list(complete["Resource"])) == sorted([DIRECTORY, WORKLOAD, VAULT, *PROVIDERS])
    # Item calls on two tables: the ledger's three, and on the connections registry UpdateItem alone.
    table, key = _connections_ids(demo)
    on_registry = [s for s in _task_policy(demo, "SessionBinding") if table in str(s["Resource"]) or key in str(s["Resource"])]
    assert on_registry == [
        {"Sid": "ConnectionsItems", "Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "${" + table + ".Arn}"},
        {
            "Sid": "ConnectionsKeyViaDynamoDb",
            "Effect": "Allow",
            "Action": list(TABLE_KEY_ACTIONS),
            "Resource": "${" + key + ".Arn}",
            "Condition": VIA_DYNAMODB,
        },
    ]
    assert [s["Resource"] for s in actions["dynamodb:UpdateItem"]] == ["${" + _ledger_table_id(demo) + ".Arn}", "${" + table + ".Arn}"]
    assert [s["Resource"] for s in actions["dynamodb:GetItem"]] == ["${" + _ledger_table_id(demo) + ".Arn}"]


def test_roles_are_separate_and_never_cross(demo: Synth) -> None:
    agent = set(_by_action(_task_policy(demo, "Agent")))
    binding = set(_by_action(_task_policy(demo, "SessionBinding")))
    assert "bedrock-agentcore:CompleteResourceTokenAuth" not in agent
    assert not {a for a in binding if a.startswith("bedrock:") or "WorkloadAccessToken" in a or "GetResourceOauth2Token" in a}
    roles = resources(demo.raw("services"), "AWS::IAM::Role")
    task_roles = [k for k in roles if "TaskRole" in k]
    assert len(task_roles) == 2


def test_vendor_secret_is_granted_by_exact_name_with_suffix_wildcard(github: Synth) -> None:
    for service in ("Agent", "SessionBinding"):
        [secret] = _by_action(_task_policy(github, service))["secretsmanager:GetSecretValue"]
        assert as_list(secret["Resource"]) == [
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:agent/github-oauth-??????"
        ]


@pytest.mark.parametrize("service", ["Agent", "SessionBinding"])
def test_execution_role_reads_only_the_signing_key_secret(demo: Synth, service: str) -> None:
    policy = one(demo.raw("services"), "AWS::IAM::Policy", f"{service}TaskDefinitionExecutionRoleDefaultPolicy")
    actions = _by_action(statements(policy))
    [read] = actions["secretsmanager:GetSecretValue"]
    assert str(read["Resource"]).startswith("${Import:")
    [star] = [s for s in statements(policy) if s["Resource"] == "*"]
    assert star["Action"] == "ecr:GetAuthorizationToken"


def test_binding_container_provides_every_setting_the_service_requires(demo: Synth) -> None:
    BindingSettings = settings_class("session_binding")

    tasks = [t["Properties"]["ContainerDefinitions"][0] for t in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").values()]
    [binding] = [c for c in tasks if "BEDROCK_MODEL_ID" not in {e["Name"] for e in c["Environment"]}]
    provided = {e["Name"] for e in binding["Environment"]} | {s["Name"] for s in binding["Secrets"]} | {"AWS_REGION"}  # ECS sets AWS_REGION
    required = {name.upper() for name, field in BindingSettings.model_fields.items() if field.is_required()}
    assert required <= provided, f"missing in the task definition: {sorted(required - provided)}"
    unknown = {e["Name"] for e in binding["Environment"]} - {name.upper() for name in BindingSettings.model_fields}
    assert not unknown, f"the binding service does not read {sorted(unknown)}"
    assert {"BINDING_TABLE", "CUSTOM_STATE_PARAM", "REQUIRE_CUSTOM_STATE"} <= {name.upper() for name in BindingSettings.model_fields}
    env = {e["Name"]: render(e["Value"]) for e in binding["Environment"]}
    # The ALB's `iss` is the full issuer URL; CloudFormation's ProviderURL attribute has no scheme.
    assert env["OIDC_ISSUER"].startswith("https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${")
    assert env["BINDING_MODE"] == "same-browser"
    assert env["REQUIRE_CUSTOM_STATE"] == "true"  # the echo of customState is required by default
    assert env["CUSTOM_STATE_PARAM"] == "state"
    assert env["BINDING_TABLE"] == "${" + _ledger_table_id(demo) + "}"
    assert env["CONNECTIONS_TABLE"] == "${" + _connections_ids(demo)[0] + "}"  # the table's name (a Ref)
    relaxed = synth((("binding_require_state", False), ("binding_state_param", "custom_state")))
    [relaxed_env] = [
        {e["Name"]: e["Value"] for e in t["Properties"]["ContainerDefinitions"][0]["Environment"]}
        for k, t in resources(relaxed.raw("services"), "AWS::ECS::TaskDefinition").items()
        if k.startswith("SessionBinding")
    ]
    assert (relaxed_env["REQUIRE_CUSTOM_STATE"], relaxed_env["CUSTOM_STATE_PARAM"]) == ("false", "custom_state")


def _ledger_table_id(synth_: Synth) -> str:
    [table_id] = [k for k in resources(synth_.raw("services"), "AWS::DynamoDB::Table") if k.startswith("BindingLedgerTable")]
    return table_id


def _connections_ids(synth_: Synth) -> tuple[str, str]:
    """(table, key) logical ids of the connections registry."""
    template = synth_.raw("services")
    [table_id] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("ConnectionsTable")]
    [key_id] = [k for k in resources(template, "AWS::KMS::Key") if k.startswith("ConnectionsKey")]
    return table_id, key_id


def test_agent_container_provides_every_setting_the_service_requires(demo: Synth) -> None:
    AgentSettings = settings_class("agent")

    tasks = [t["Properties"]["ContainerDefinitions"][0] for t in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").values()]
    [agent] = [c for c in tasks if "BEDROCK_MODEL_ID" in {e["Name"] for e in c["Environment"]}]
    provided = {e["Name"] for e in agent["Environment"]} | {s["Name"] for s in agent["Secrets"]} | {"AWS_REGION"}
    required = {name.upper() for name, field in AgentSettings.model_fields.items() if field.is_required()}
    assert required <= provided, f"missing in the task definition: {sorted(required - provided)}"
    env = {e["Name"]: e["Value"] for e in agent["Environment"]}
    assert "PROVIDERS" in env  # the outbound providers, as JSON (tests/stacks/test_providers.py)
    assert not {"PROVIDER_KIND", "PROVIDER_SCOPES", "CREDENTIAL_PROVIDER_NAME", "DEMO_API_URL"} & set(env)
    known = {name.upper() for name in AgentSettings.model_fields}
    assert not set(env) - known, f"the agent does not read {sorted(set(env) - known)}"
    assert not {"BINDING_TABLE", "CUSTOM_STATE_PARAM"} & set(env)  # the binding service's alone
    assert env["CONNECTIONS_TABLE"] == {"Ref": _connections_ids(demo)[0]}  # the registry both services share


def _environment_of(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The environment of the ECS container or the Lambda function whose logical id starts with `prefix`."""
    tasks = [t for k, t in resources(template, "AWS::ECS::TaskDefinition").items() if k.startswith(prefix)]
    if tasks:
        [task] = tasks
        return {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    [function] = [f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith(f"{prefix}Function")]
    return dict(function["Properties"]["Environment"]["Variables"])


@pytest.mark.parametrize("shape", [(), (("binding_compute", "lambda"),)], ids=["binding-on-fargate", "binding-on-lambda"])
def test_both_services_name_the_one_connections_table(shape: tuple[tuple[str, str], ...]) -> None:
    """CONNECTIONS_TABLE is the registry table's name (a Ref) for the agent and for the binding service, wherever it runs."""
    built = synth(shape)
    template = built.raw("services")
    table, _ = _connections_ids(built)
    assert _environment_of(template, "AgentTaskDefinition")["CONNECTIONS_TABLE"] == {"Ref": table}
    assert _environment_of(template, "SessionBinding")["CONNECTIONS_TABLE"] == {"Ref": table}


def test_sign_out_goes_to_the_pools_logout_and_back_to_a_registered_page(demo: Synth) -> None:
    """The agent's SIGN_OUT_URL is Cognito's logout endpoint for the ALB's client, returning to /signed-out,
    and exactly that page is the client's one logout URL (Cognito refuses any other)."""
    from cdk_app.routes import SIGNED_OUT_PATH as LISTENER_PATH
    from services.agent.sign_out import SIGNED_OUT_PATH  # the agent's copy: services import nothing from cdk_app

    assert SIGNED_OUT_PATH == LISTENER_PATH == "/signed-out"
    signed_out = f"https://{demo.config.domain_name}{SIGNED_OUT_PATH}"
    client = one(demo.raw("identity"), "AWS::Cognito::UserPoolClient", "AlbClient")["Properties"]
    assert client["LogoutURLs"] == [signed_out]
    [task] = [t for k, t in resources(demo.raw("services"), "AWS::ECS::TaskDefinition").items() if k.startswith("AgentTaskDefinition")]
    env = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    url = str(render(env["SIGN_OUT_URL"]))
    assert url.startswith("https://${Import:") and ".auth.${AWS::Region}.amazoncognito.com/logout?client_id=${Import:" in url
    assert url.endswith("&logout_uri=" + quote(signed_out, safe=""))
