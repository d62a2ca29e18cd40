"""The services' IAM statements as the CDK synthesizes them, with their resources turned into local ARNs.

`synthesized()` runs `app.py` (the real CDK app, default `cdk.json` context, no AWS account) into a
cache directory and reuses it while no source that shapes the templates changed (`app.py`, `cdk.json`,
`cdk_app/`, `stacks/`, the installed aws-cdk-lib): about 9 s the first time, nothing after.

`Templates.statements(service)` finds the role a service runs as by following the templates as AWS
does, never by logical id: the listener rule for a path of the service (`cdk_app/routes.py`) -> its
target group -> the ECS service's task role, or the Lambda target's role; the demo API is the Lambda
function whose environment names the notes table. Every statement that applies to the role (its
inline policies, attached managed policies, `AWS::IAM::Policy` resources naming it) is returned with
CloudFormation's intrinsics resolved:

- pseudo parameters: the local partition, region and account;
- `Fn::Join`, and `Fn::ImportValue` through the exporting stack's output;
- a `Ref`/`Fn::GetAtt` of a resource the local stack also has, to that local resource's ARN
  (`LocalResources`): a table a service's environment names (`BINDING_TABLE`, `NOTES_TABLE`), the
  secret the credential provider reads (`ClientSecretConfig.SecretId`), that secret's KMS key.

Anything else becomes `arn:unresolved:cloudformation:::<logical id>`, which matches no request's ARN: a statement about a resource
the local stack does not have grants nothing here, and a missing binding shows as AccessDenied, not
as a silent pass.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cdk_app.routes import ROUTES, Target
from services.common import environment as names

ROOT = Path(__file__).resolve().parents[2]
# Per user, not per clone: a fresh clone of the same sources (same fingerprint) starts without synthesizing.
# Used only while it is this user's alone (see `_private`); otherwise the clone's own `.cache/` is.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentcore-ecs" / "local-iam"
CLONE_CACHE = ROOT / ".cache" / "local-iam"
KEEP = 4  # fingerprints kept: clones at different commits share the folder
SOURCES = ("app.py", "cdk.json", "cdk_app", "stacks", "services/common/environment.py")  # stacks/ imports the last
UNRESOLVED = "arn:unresolved:cloudformation:::"  # + the logical id: an ARN in no partition, matching no request
SERVICES = ("agent", "session_binding", "demo_api")


class TemplateError(RuntimeError):
    """The templates could not be synthesized or do not have the shape this module follows."""


# ---------------------------------------------------------------------------------------- synth


def fingerprint(root: Path = ROOT) -> str:
    """A digest of everything that shapes the templates: the CDK app's sources and the CDK library's version."""
    digest = hashlib.sha256()
    for name in SOURCES:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(Path(__file__).read_bytes())  # how the templates are made and kept is part of what they are
    for package in ("aws-cdk-lib", "cdk-nag"):
        try:
            digest.update(package.encode() + version(package).encode())
        except PackageNotFoundError:
            digest.update(b"no " + package.encode())  # the synth below fails and says so
    return digest.hexdigest()[:16]


def synthesized(root: Path = ROOT, cache: Path = CACHE, timeout_s: float = 180.0) -> Path:
    """A directory of `*.template.json` for the default configuration, synthesized when the sources changed."""
    stamp = fingerprint(root)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(cache):  # templates someone else could write would decide what the IAM check allows
        cache = CLONE_CACHE if cache == CACHE else cache
        cache.mkdir(parents=True, exist_ok=True)
    outdir = cache / stamp
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once: one synthesizes, the other waits for it
        if (outdir / "Services.template.json").is_file():
            return outdir
        _prune(cache, KEEP - 1)
        _synth(root, outdir, timeout_s)
    return outdir


def _private(folder: Path) -> bool:
    """Whether only this user can write `folder` and the folders above it up to the home (or `/`)."""
    home = Path.home()
    for path in (folder, *folder.parents):
        info = path.stat()
        if path == home or path == Path(path.anchor):
            return info.st_uid in (os.getuid(), 0) and not info.st_mode & 0o022
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return False
    return True


def _prune(cache: Path, keep: int) -> None:
    """Remove all but the `keep` most recently made template folders (and any partial one)."""
    folders = sorted((p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in folders if p.name.endswith(".partial")] + [p for p in folders if not p.name.endswith(".partial")][keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _synth(root: Path, outdir: Path, timeout_s: float) -> None:
    partial = outdir.with_name(outdir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    context = json.loads((root / "cdk.json").read_text())["context"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDK_", "AWS_"))}
    env |= {"CDK_OUTDIR": str(partial), "CDK_CONTEXT_JSON": json.dumps(context), "PYTHONPATH": str(root)}
    done = subprocess.run(  # noqa: S603 - fixed argv: this interpreter and the repository's app.py
        [sys.executable, str(root / "app.py")], cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise TemplateError(f"synthesizing the CDK app for the local IAM check failed:\n{done.stderr[-2000:]}")
    for asset in partial.glob("asset.*"):
        shutil.rmtree(asset, ignore_errors=True) if asset.is_dir() else asset.unlink()  # images and code: not needed here
    partial.rename(outdir)


# ---------------------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class LocalResources:
    """What the local stack has in place of the deployed resources, by ARN."""

    partition: str
    region: str
    account: str
    client_secrets: Mapping[str, str]  # credential provider name -> the ARN of the client secret it reads
    client_secret_key_arn: str  # the KMS key of those secrets
    tables: Mapping[str, str] = field(default_factory=dict)  # environment variable name -> table ARN


Stacks = Mapping[str, Mapping[str, Any]]  # stack name -> template


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


@dataclass
class Templates:
    """The synthesized stacks, and the local ARN for each deployed resource the local stack stands in for."""

    stacks: Stacks
    local: LocalResources

    @classmethod
    def load(cls, directory: Path, local: LocalResources) -> Templates:
        stacks = {p.name.removesuffix(".template.json"): json.loads(p.read_text()) for p in sorted(directory.glob("*.template.json"))}
        if "Services" not in stacks:
            raise TemplateError(f"no Services.template.json in {directory}")
        return cls(stacks, local)

    # -------------------------------------------------------------- following references

    def _resources(self, stack: str) -> dict[str, Any]:
        return dict(self.stacks[stack]["Resources"])

    def _export(self, name: str) -> tuple[str, Any]:
        for stack, template in self.stacks.items():
            for output in template.get("Outputs", {}).values():
                if output.get("Export", {}).get("Name") == name:
                    return stack, output["Value"]
        raise TemplateError(f"no stack exports {name}")

    def target(self, stack: str, value: Any) -> tuple[str, str] | None:
        """The (stack, logical id) a Ref, GetAtt or ImportValue points at."""
        if isinstance(value, dict) and "Fn::ImportValue" in value:
            return self.target(*self._export(str(value["Fn::ImportValue"])))
        found = _ref_id(value)
        return (stack, found) if found is not None and found in self.stacks[stack]["Resources"] else None

    def _bindings(self) -> dict[tuple[str, str], str]:
        """Deployed resource -> the local ARN of its stand-in."""
        bound: dict[tuple[str, str], str] = {}
        for stack, _, env in self._compute():
            for variable, arn in self.local.tables.items():
                table = self.target(stack, env.get(variable))
                if table is not None:
                    bound[table] = arn
        for stack, template in self.stacks.items():
            for resource in template["Resources"].values():
                config = (
                    resource["Properties"].get("Oauth2ProviderConfigInput", {})
                    if resource["Type"].endswith("OAuth2CredentialProvider")
                    else {}
                )
                local_secret = self.local.client_secrets.get(str(resource["Properties"].get("Name")))
                for vendor in config.values():
                    secret = self.target(stack, vendor.get("ClientSecretConfig", {}).get("SecretId"))
                    if secret is not None and local_secret is not None:
                        bound[secret] = local_secret
                        key = self.target(secret[0], self._resources(secret[0])[secret[1]]["Properties"].get("KmsKeyId"))
                        if key is not None:
                            bound[key] = self.local.client_secret_key_arn
        return bound

    def resolve(self, stack: str, value: Any, bound: Mapping[tuple[str, str], str]) -> Any:
        """`value` with every intrinsic replaced by a string (see the module docstring)."""
        if isinstance(value, list):
            return [self.resolve(stack, v, bound) for v in value]
        if not isinstance(value, dict):
            return value
        function = next(iter(value)) if len(value) == 1 else ""
        if function == "Fn::Join":
            separator, parts = value["Fn::Join"]
            return str(separator).join(str(self.resolve(stack, p, bound)) for p in parts)
        if function in ("Ref", "Fn::GetAtt", "Fn::ImportValue"):
            return self._reference(stack, value, bound)
        if function.startswith("Fn::"):
            return UNRESOLVED + function
        return {k: self.resolve(stack, v, bound) for k, v in value.items()}

    def _reference(self, stack: str, value: dict[str, Any], bound: Mapping[tuple[str, str], str]) -> str:
        pseudo = {
            "AWS::Partition": self.local.partition,
            "AWS::Region": self.local.region,
            "AWS::AccountId": self.local.account,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if value.get("Ref") in pseudo:
            return pseudo[value["Ref"]]
        target = self.target(stack, value)
        if target is None:
            return UNRESOLVED + json.dumps(value)
        return bound.get(target, UNRESOLVED + target[1])

    # -------------------------------------------------------------- roles

    def _compute(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, environment) of every task definition and Lambda function."""
        for stack, template in self.stacks.items():
            for logical_id, resource in template["Resources"].items():
                props = resource.get("Properties", {})
                if resource["Type"] == "AWS::Lambda::Function":
                    yield stack, logical_id, dict(props.get("Environment", {}).get("Variables", {}))
                elif resource["Type"] == "AWS::ECS::TaskDefinition":
                    env = {e["Name"]: e["Value"] for c in props.get("ContainerDefinitions", []) for e in c.get("Environment", [])}
                    yield stack, logical_id, env

    def role_of(self, service: str) -> tuple[str, str]:
        """(stack, logical id) of the role `service` runs as."""
        if service == "demo_api":
            found = [(s, i) for s, i, env in self._compute() if names.NOTES_TABLE in env]
            if len(found) != 1:
                raise TemplateError(f"expected one function with {names.NOTES_TABLE} in its environment, found {len(found)}")
            stack, function = found[0]
            role = self.target(stack, self._resources(stack)[function]["Properties"]["Role"])
        else:
            stack = "Services"
            route = next((r for r in ROUTES if r.target == Target(service) and "*" not in r.paths[0]), None)
            role = self._role_behind(stack, route.paths[0]) if route is not None else None
        if role is None:
            raise TemplateError(f"no role found for {service}")
        return role

    def _role_behind(self, stack: str, path: str) -> tuple[str, str] | None:
        resources = self._resources(stack)
        rules = [r for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"]
        rule = next(
            r for r in rules if path in [v for c in r["Properties"]["Conditions"] for v in c.get("PathPatternConfig", {}).get("Values", [])]
        )
        forward = next(a for a in rule["Properties"]["Actions"] if a["Type"] == "forward")
        group_id = _ref_id(forward["TargetGroupArn"])
        group = resources[str(group_id)]["Properties"]
        if group.get("TargetType") == "lambda":
            function = resources[str(_ref_id(group["Targets"][0]["Id"]))]
            return self.target(stack, function["Properties"]["Role"])
        for service in (r for r in resources.values() if r["Type"] == "AWS::ECS::Service"):
            if group_id in {_ref_id(lb["TargetGroupArn"]) for lb in service["Properties"].get("LoadBalancers", [])}:
                task = resources[str(_ref_id(service["Properties"]["TaskDefinition"]))]
                return self.target(stack, task["Properties"]["TaskRoleArn"])
        return None

    def statements(self, service: str) -> list[dict[str, Any]]:
        """Every statement that applies to `service`'s role, resolved to local ARNs."""
        stack, role_id = self.role_of(service)
        resources = self._resources(stack)
        role = resources[role_id]["Properties"]
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
        attached = {self.target(stack, arn) for arn in role.get("ManagedPolicyArns", [])}
        for policy_id, policy in resources.items():
            if policy["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            roles = {self.target(stack, r) for r in policy["Properties"].get("Roles", [])}
            if (stack, policy_id) in attached or (stack, role_id) in roles:
                documents.append(policy["Properties"]["PolicyDocument"])
        bound = self._bindings()
        resolved = [self.resolve(stack, s, bound) for d in documents for s in d["Statement"]]
        for statement in resolved:
            if statement.get("Effect") == "Deny" and UNRESOLVED in json.dumps(statement):
                # A Deny about a resource the local stack does not have would deny nothing here: say so instead.
                raise TemplateError(f"{service}: a Deny statement the local IAM check cannot resolve: {json.dumps(statement)}")
        return resolved

    def role_name(self, service: str) -> str:
        """The role's logical id: what AccessDenied messages name (the deployed name is CloudFormation's choice)."""
        return self.role_of(service)[1]

    def names(self) -> dict[str, tuple[str, ...]]:
        """The AgentCore resource names the stacks deploy, sorted: `workload_identity` and `credential_providers`."""
        found: dict[str, list[str]] = {"workload_identity": [], "credential_providers": []}
        for template in self.stacks.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::BedrockAgentCore::WorkloadIdentity":
                    found["workload_identity"].append(str(resource["Properties"]["Name"]))
                elif resource["Type"] == "AWS::BedrockAgentCore::OAuth2CredentialProvider":
                    found["credential_providers"].append(str(resource["Properties"]["Name"]))
        return {kind: tuple(sorted(values)) for kind, values in found.items()}
