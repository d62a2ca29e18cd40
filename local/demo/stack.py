"""The whole local stack in one object: what `make demo` runs and what the end-to-end tests drive.

Started in dependency order, all on loopback:

0. the local DynamoDB (`local/dynamodb.py`: dynalite behind a front in this process), with the demo
   API's notes table and the session binding service's ledger table;
1. the AgentCore Identity emulator (in this process);
2. the OIDC providers (one Node process, two issuers): sign-in, standing in for Cognito, and the demo
   authorization server, with one client per `demo` provider of cdk.json (Demo Notes, Demo Tasks: see
   `local/demo/providers.py`), each client's redirect URI its provider's callback URL at the emulator;
3. the workload identity and one credential provider per demo provider, registered in the emulator through
   boto3, as `cdk deploy` registers them in AgentCore: each client secret is stored as JSON in a
   local Secrets Manager (moto's server in this process, `local/demo/secretsmanager.py`) and referenced
   by ARN and JSON key (`clientSecretSource` EXTERNAL), and the client authenticates with HTTP Basic
   (`CLIENT_SECRET_BASIC`), as in the AgentIdentity stack;
4. the model stand-in (unless a real Bedrock model is configured) and the ALB's key endpoint;
5. the demo API, the session binding service and the agent, each in its own uvicorn process with
   the same settings names as in ECS and Lambda (`APP_PROFILE=local`, loopback endpoints);
6. the local ALB on the public port, routing by `cdk_app/routes.py`.

Secrets (client secrets, the flow signing key) are generated for each run and never written to disk
(the local Secrets Manager keeps its copy in memory).
Logs of the service processes go to files in `log_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdk_app.routes import IDLE_TIMEOUT_S, SIGNED_OUT_PATH, TARGET_KEEP_ALIVE_S, Target
from local.agentcore_identity import CALLBACK_PATH, Emulator, Faults, Quotas, callback_id
from local.alb.keys import AlbSigningKey, KeyServer
from local.alb.proxy import CALLBACK_PATH as ALB_CALLBACK_PATH, AlbConfig, AlbState, LocalAlb
from local.bedrock import DemoModel
from local.demo.providers import CLIENT_SECRET_JSON_KEY, LocalProvider, local_providers
from local.demo.secretsmanager import LocalSecretsManager
from local.dynamodb import BINDING_TABLE, CONNECTIONS_TABLE, NOTES_TABLE, LocalDynamoDB, LocalDynamoDBError, create_table
from local.iam.principals import ADMINISTRATOR, Principals
from local.iam.templates import LocalResources, TemplateError, Templates, synthesized
from local.idp import DEMO_USERS, ClientSpec, DemoUser, IdpProcess, IdpStartError, demo_config
from local.processes import die_with_parent, stop_process
from services.common import environment as names

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ALB_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/local-demo/0123456789abcdef"
ALB_CLIENT_ID = "local-alb"
# The names the stacks deploy with the default cdk.json (checked against the synthesized templates at start):
# the IAM statements name them in their ARNs.
WORKLOAD_NAME = "agentcore-ecs-sandbox-agent"
PROVIDERS = local_providers()  # the demo entries of cdk.json's `providers`
NOTES = PROVIDERS[0]  # the first: the one most tests consent to
PROVIDER_NAME = NOTES.credential_provider
SCOPES = NOTES.scope_string
STAND_IN_MODEL_ID = "local.demo-model-stand-in"
NOTES_TABLE_NAME = "local-demo-notes"
BINDING_TABLE_NAME = "local-demo-binding-sessions"
CONNECTIONS_TABLE_NAME = "local-demo-connections"
GRACEFUL_SHUTDOWN_S = 20  # as in the Dockerfiles
SERVICE_APPS = {
    "demo_api": "services.demo_api.main:app",
    "session_binding": "services.session_binding.main:app",
    "agent": "services.agent.main:app",
}


class DemoError(Exception):
    """The stack could not start; the message says what to do."""


@dataclass(frozen=True)
class Ports:
    alb: int
    sign_in: int
    consent: int
    agentcore: int
    model: int
    alb_keys: int
    demo_api: int
    session_binding: int
    agent: int
    dynamodb: int
    dynalite: int  # the local DynamoDB's private backend, chosen with the rest so nothing else takes it

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """The public port, then one port after another for the rest (DEMO_PORT=8000: 8000-8010)."""
        highest = 65536 - len(fields(cls))  # the last port, base + len - 1, is at most 65535
        if not 1024 <= base <= highest:
            raise DemoError(f"DEMO_PORT must be a port number from 1024 to {highest}, got {base}")
        return cls(*range(base, base + len(fields(cls))))

    @classmethod
    def ephemeral(cls, host: str = "127.0.0.1") -> Ports:
        """Free ports chosen by the kernel (tests run several stacks side by side)."""
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in fields(cls)]
            for sock in sockets:
                sock.bind((host, 0))
            return cls(*(int(sock.getsockname()[1]) for sock in sockets))

    def check_free(self, host: str) -> None:
        for item in fields(self):
            port = getattr(self, item.name)
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    raise DemoError(
                        f"port {port} ({item.name.replace('_', ' ')}) on {host} is in use: stop what uses it, "
                        "or choose other ports with DEMO_PORT=<first port>"
                    ) from None


@dataclass
class _Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


class DemoStack:
    def __init__(
        self,
        *,
        ports: Ports,
        host: str = "127.0.0.1",
        log_dir: Path,
        model_id: str | None = None,
        session_ttl_s: float = 600.0,
        faults: Faults | None = None,
        quotas: Quotas | None = None,
        service_env: dict[str, dict[str, str]] | None = None,
        users: tuple[DemoUser, ...] = DEMO_USERS,
        iam_check: bool = True,
    ) -> None:
        """`model_id`: a real Bedrock model (AWS credentials from the environment); None: the stand-in.
        `iam_check`: each service signs with keys of its own and the emulator and the local DynamoDB
        allow only what its role's synthesized statements allow (off with a real model: the services
        then hold the environment's AWS credentials; a test takes a statement away with `use_principals`)."""
        self.host, self.ports, self.log_dir = host, ports, log_dir
        ports.check_free(host)  # before anything here binds one of them
        self.model_id = model_id
        self.public_url = f"http://{host}:{ports.alb}"
        self.binding_url = f"{self.public_url}/oauth2/session-binding"
        self.region = (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION) if model_id else REGION
        self.dynamodb = LocalDynamoDB(host, ports.dynamodb, region=self.region, backend_port=ports.dynalite)
        self.secrets_manager = LocalSecretsManager(self.region)
        self.client_secret_arns: dict[str, str] = {}  # each provider's EXTERNAL secret by provider name, once stored
        self.iam_check = iam_check and model_id is None
        self.principals: Principals | None = None  # once the templates are read
        self._templates: Path | TemplateError | None = None
        self.emulator = Emulator(
            host,
            ports.agentcore,
            session_ttl_s=session_ttl_s,
            region=self.region,
            account=ACCOUNT,
            faults=faults,
            quotas=quotas,
            secret_reader=self.secrets_manager.read,
        )
        self.model: DemoModel | None = None
        self.alb_key = AlbSigningKey()
        self.key_server = KeyServer([self.alb_key], host=host, port=ports.alb_keys)
        self.alb_state = AlbState()
        self.idp: IdpProcess | None = None
        self.services: dict[str, _Service] = {}
        self._service_env = service_env or {}
        self.users = users
        self._alb: LocalAlb | None = None
        self._alb_server: uvicorn.Server | None = None
        self._alb_thread: threading.Thread | None = None
        self._alb_socket: socket.socket | None = None
        self._secrets = {
            "alb_client": secrets.token_urlsafe(32),
            **{f"client:{p.name}": secrets.token_urlsafe(32) for p in PROVIDERS},
            "flow_key": secrets.token_urlsafe(48),
        }

    @classmethod
    def on_free_ports(
        cls, *, log_dir: Path, host: str = "127.0.0.1", attempts: int = 3, late_attempts: int = 2, **kwargs: Any
    ) -> DemoStack:
        """A started stack on ports the kernel picked, for tests, which run several stacks side by side.

        Another process can take a picked port before a part of the stack binds it (ports are chosen
        first, bound later), so a start that fails on a port in use is tried again on fresh ports, up
        to `attempts` starts. A start that ran out of time (a part not ready in 30-60 s, where it takes
        about 1 s on an idle machine and under 5 s at a load average of 10) is tried again up to
        `late_attempts` starts in all, with a warning carrying the first error (the next start logs to
        `<log_dir>-late-1`, ...): a machine that stalls for half a minute is not what a test using the
        stack checks. Any other failure is raised at once."""
        ports_taken = late = 0
        first_log_dir = log_dir
        while True:
            try:
                return cls(ports=Ports.ephemeral(host), host=host, log_dir=log_dir, **kwargs).start()
            except DemoError as exc:
                if any(sign in str(exc) for sign in _PORT_TAKEN) and ports_taken + 1 < attempts:
                    ports_taken += 1
                elif any(sign in str(exc) for sign in _OUT_OF_TIME) and late + 1 < late_attempts:
                    late += 1
                    warnings.warn(f"a local stack did not start in time, starting another: {exc}", stacklevel=2)
                    log_dir = first_log_dir.with_name(f"{first_log_dir.name}-late-{late}")
                else:
                    raise

    # ------------------------------------------------------------------ addresses

    @property
    def sign_in_issuer(self) -> str:
        return f"http://{self.host}:{self.ports.sign_in}"

    @property
    def consent_issuer(self) -> str:
        return f"http://{self.host}:{self.ports.consent}"

    @property
    def callback_url(self) -> str:
        """AgentCore's callback URL of the first demo provider (registered at its client)."""
        return self.callback_url_for(NOTES)

    def callback_url_for(self, provider: LocalProvider) -> str:
        return f"{self.emulator.base_url}{CALLBACK_PATH}{callback_id(ACCOUNT, self.region, provider.credential_provider)}"

    @property
    def client_secret_arn(self) -> str | None:
        """The first demo provider's EXTERNAL client secret, once stored."""
        return self.client_secret_arns.get(NOTES.name)

    @property
    def signed_out_url(self) -> str:
        """The agent's signed-out page: the sign-in client's one registered logout URL."""
        return f"{self.public_url}{SIGNED_OUT_PATH}"

    @property
    def sign_out_url(self) -> str:
        """The sign-in issuer's logout, Cognito's shape: it returns to the agent's signed-out page."""
        query = urllib.parse.urlencode({"client_id": ALB_CLIENT_ID, "logout_uri": self.signed_out_url})
        return f"{self.sign_in_issuer}/logout?{query}"

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{getattr(self.ports, name)}"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 60.0) -> DemoStack:
        """Start everything in order; on any failure stop what started and raise DemoError saying what to do."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _bypass_proxies_for_loopback()
        synth = threading.Thread(target=self._synthesize, name="local-iam-synth", daemon=True)
        if self.iam_check:
            synth.start()  # meanwhile the rest starts
        try:
            self._start_dynamodb()
            self.emulator.start()
            self.idp = IdpProcess(self._idp_config()).start(timeout_s=timeout_s / 2)
            self._store_client_secret()
            if self.iam_check:
                synth.join()
                self._check_iam()
            self._register()
            if self.model_id is None:
                self.model = DemoModel(self.host, self.ports.model).start()
            self.key_server.start()
            jwks = self._discover(self.consent_issuer)["jwks_uri"]
            for name in SERVICE_APPS:
                self._spawn(name, self._env(name, jwks))
            deadline = time.monotonic() + timeout_s
            for service in self.services.values():
                self._wait_healthy(service, deadline)
            self._start_alb()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, IdpStartError | LocalDynamoDBError | OSError | ClientError | BotoCoreError | TemplateError):
                raise DemoError(f"{exc} (logs in {self.log_dir})") from exc
            raise
        return self

    def stop(self) -> None:
        """Stop everything that runs, the ALB first (no new requests), then the services, then the
        stand-ins, the local DynamoDB last. Safe to call twice, and after a failed start."""
        steps: list[Callable[[], None]] = [
            self._stop_alb,
            self._stop_services,
            self.key_server.stop,
            self.emulator.stop,
            self.secrets_manager.delete_all,
            self.dynamodb.stop,
        ]
        if self.model is not None:
            steps.insert(2, self.model.stop)
        if self.idp is not None:
            steps.insert(2, self.idp.stop)
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        self.model, self.idp = None, None
        if errors:
            raise DemoError("could not stop cleanly: " + "; ".join(errors))

    def _stop_alb(self) -> None:
        if self._alb_server is not None:
            self._alb_server.should_exit = True
            if self._alb_thread is not None:
                self._alb_thread.join(timeout=10)
            self._alb_server = None
        if self._alb_socket is not None:
            self._alb_socket.close()  # a no-op when the server closed it (or uvloop detached it) already
            self._alb_socket = None

    def _stop_services(self) -> None:
        """SIGTERM to all at once, then wait: each gets its whole graceful-shutdown time (20 s) and more."""
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.terminate()
        deadline = time.monotonic() + GRACEFUL_SHUTDOWN_S + 5
        for service in self.services.values():
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        self.services.clear()

    def exited(self) -> list[str]:
        """Services whose process has ended (for the console: a crash shows as 502s otherwise)."""
        return [f"{s.name} (exit {s.process.returncode})" for s in self.services.values() if s.process.poll() is not None]

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ steps

    def _start_dynamodb(self) -> None:
        """What the CDK deploys as tables: the demo API's notes, the session binding ledger and the connections registry, with the
        shapes `tests/local/test_tables.py` checks against the synthesized templates."""
        self.dynamodb.start()
        client = self.dynamodb.client()
        create_table(client, NOTES_TABLE_NAME, NOTES_TABLE)
        create_table(client, BINDING_TABLE_NAME, BINDING_TABLE)
        create_table(client, CONNECTIONS_TABLE_NAME, CONNECTIONS_TABLE)

    def _idp_config(self) -> dict[str, Any]:
        return demo_config(
            host=self.host,
            sign_in_port=self.ports.sign_in,
            consent_port=self.ports.consent,
            sign_in_client=ClientSpec(
                client_id=ALB_CLIENT_ID,
                client_secret=self._secrets["alb_client"],
                redirect_uris=(f"{self.public_url}{ALB_CALLBACK_PATH}",),
                client_name="Example Agent",
                logout_uris=(self.signed_out_url,),
            ),
            consent_clients=tuple(
                ClientSpec(
                    client_id=provider.client_id,
                    client_secret=self._secrets[f"client:{provider.name}"],
                    redirect_uris=(self.callback_url_for(provider),),
                    client_name=f"Example Agent ({provider.display_name})",
                )
                for provider in PROVIDERS
            ),
            users=self.users,
        )

    @property
    def admin_credentials(self) -> dict[str, str]:
        """boto3 keyword arguments for the administrator (the deployer): allowed everything, as in AWS."""
        if self.principals is None:
            return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}  # nothing checks them
        admin = self.principals[ADMINISTRATOR]
        return {"aws_access_key_id": admin.access_key_id, "aws_secret_access_key": admin.secret_access_key}

    def agentcore_control(self) -> Any:
        return boto3.client(
            "bedrock-agentcore-control",
            region_name=self.region,
            endpoint_url=self.emulator.base_url,
            config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=10),
            **self.admin_credentials,
        )

    def _synthesize(self) -> None:
        """The CDK templates the IAM check reads (cached; about 9 s when the stacks changed)."""
        try:
            self._templates = synthesized()
        except (TemplateError, OSError, subprocess.SubprocessError) as exc:
            self._templates = TemplateError(f"the local IAM check needs the synthesized templates: {exc}")

    def local_resources(self) -> LocalResources:
        """The local stand-ins of what the templates' statements name, by ARN."""
        table = f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/"
        return LocalResources(
            partition="aws",
            region=self.region,
            account=ACCOUNT,
            client_secrets={p.credential_provider: self.client_secret_arns[p.name] for p in PROVIDERS},
            client_secret_key_arn=self.secrets_manager.key_arn,
            tables={
                names.BINDING_TABLE: table + BINDING_TABLE_NAME,
                names.NOTES_TABLE: table + NOTES_TABLE_NAME,
                names.CONNECTIONS_TABLE: table + CONNECTIONS_TABLE_NAME,
            },
        )

    def _check_iam(self) -> None:
        """Each service's principal from its role's synthesized statements; the emulator and the local
        DynamoDB check every call against them from here on."""
        if isinstance(self._templates, TemplateError) or self._templates is None:
            raise self._templates or TemplateError("the templates were not synthesized")
        templates = Templates.load(self._templates, self.local_resources())
        deployed = templates.names()
        ours = {"workload_identity": (WORKLOAD_NAME,), "credential_providers": tuple(sorted(p.credential_provider for p in PROVIDERS))}
        if deployed != ours:
            raise TemplateError(f"the stacks deploy AgentCore names {deployed}; the local stack uses {ours}")
        principals = Principals.for_services(templates, self.local_resources())
        self.use_principals(principals)

    def use_principals(self, principals: Principals) -> None:
        """Check every call to the emulator and the local DynamoDB against `principals` from now on (the services
        keep their keys: `Principals.replaced` keeps them). A test takes a statement away, then puts it back."""
        self.principals = principals
        self.emulator.check_iam(principals)
        self.dynamodb.check_iam(principals, ACCOUNT)

    def _store_client_secret(self) -> None:
        for provider in PROVIDERS:
            self.client_secret_arns[provider.name] = self.secrets_manager.create_json_secret(
                provider.secret_name, {CLIENT_SECRET_JSON_KEY: self._secrets[f"client:{provider.name}"]}
            )

    def _register(self) -> None:
        """What the AgentIdentity stack does in AWS: the workload identity with its one allowed return
        URL, and the credential provider for the notes API's authorization server (by discovery URL),
        its client secret in a Secrets Manager secret of ours (EXTERNAL: ARN and JSON key), the client
        authenticated with HTTP Basic (`stacks/constructs/agent_identity.py`)."""
        control = self.agentcore_control()
        control.create_workload_identity(name=WORKLOAD_NAME, allowedResourceOauth2ReturnUrls=[self.binding_url])
        for spec in PROVIDERS:
            provider = control.create_oauth2_credential_provider(
                name=spec.credential_provider,
                credentialProviderVendor="CustomOauth2",
                oauth2ProviderConfigInput={
                    "customOauth2ProviderConfig": {
                        "oauthDiscovery": {"discoveryUrl": f"{self.consent_issuer}/.well-known/openid-configuration"},
                        "clientId": spec.client_id,
                        "clientSecretSource": "EXTERNAL",
                        "clientSecretConfig": {"secretId": self.client_secret_arns[spec.name], "jsonKey": CLIENT_SECRET_JSON_KEY},
                        "clientAuthenticationMethod": "CLIENT_SECRET_BASIC",
                    }
                },
            )
            if provider["callbackUrl"] != self.callback_url_for(spec):
                raise DemoError(f"the emulator's callback URL {provider['callbackUrl']} is not the one registered at {spec.display_name}")

    def _discover(self, issuer: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=5) as response:  # noqa: S310 - loopback
            doc: dict[str, Any] = json.loads(response.read())
        return doc

    def _env(self, name: str, jwks_url: str) -> dict[str, str]:
        keys = self.principals[name].environment() if self.principals else {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        aws = (
            {}
            if self.model_id
            else keys | {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
        )
        common = {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            names.APP_PROFILE: "local",
            names.AWS_REGION: self.region,
            names.LOG_LEVEL: "INFO",
            **aws,
        }
        if name == "demo_api":
            env = {
                **common,
                names.DEMO_ISSUER: self.consent_issuer,
                names.DEMO_CLIENT_IDS: " ".join(p.client_id for p in PROVIDERS),
                names.DEMO_JWKS_URL: jwks_url,
                names.NOTES_TABLE: NOTES_TABLE_NAME,
                "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            }
        else:
            env = {
                **common,
                names.PUBLIC_BASE_URL: self.public_url,
                names.ALB_ARN: ALB_ARN,
                names.OIDC_ISSUER: self.sign_in_issuer,
                names.OIDC_CLIENT_ID: ALB_CLIENT_ID,
                names.ALB_KEYS_BASE_URL: self.key_server.base_url,
                names.FLOW_SIGNING_KEYS: json.dumps({"kid": "local-1", "key": self._secrets["flow_key"]}),
                "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": self.emulator.base_url,
            }
        if name in ("session_binding", "agent"):
            env |= {names.CONNECTIONS_TABLE: CONNECTIONS_TABLE_NAME, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint}
        if name == "session_binding":
            env |= {names.BINDING_TABLE: BINDING_TABLE_NAME}
        if name == "agent":
            env |= {
                names.BEDROCK_MODEL_ID: self.model_id or STAND_IN_MODEL_ID,
                names.WORKLOAD_IDENTITY_NAME: WORKLOAD_NAME,
                names.PROVIDERS: json.dumps([p.agent_entry(self.service_url("demo_api")) for p in PROVIDERS]),
                names.SESSION_BINDING_URL: self.binding_url,
                names.SIGN_OUT_URL: self.sign_out_url,
            }
            if self.model is not None:
                env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = self.model.endpoint
        return env | self._service_env.get(name, {})

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        port = getattr(self.ports, name)
        log = self.log_dir / f"{name}.log"
        # An allow-list, not the whole environment: a BINDING_MODE or NOTES_TABLE in the shell must not
        # change what the demo or the tests run. AWS credentials pass only for a real model.
        allowed = _BASE_ENV | (_AWS_CREDENTIAL_ENV if self.model_id else frozenset())
        base = {k: v for k, v in os.environ.items() if k in allowed or k.startswith("LC_")}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            SERVICE_APPS[name],
            "--host",
            self.host,
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "on",
            "--timeout-graceful-shutdown",
            str(GRACEFUL_SHUTDOWN_S),
            "--timeout-keep-alive",
            str(TARGET_KEEP_ALIVE_S),  # the local ALB closes idle connections first, as the deployed one does
        ]
        with log.open("ab") as out:
            # The hook makes one C call (prctl, resolved before the fork): no locks, no imports.
            process = subprocess.Popen(  # noqa: S603 - fixed argv
                command,
                env=base | env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        self.services[name] = _Service(name, port, process, log)

    def _wait_healthy(self, service: _Service, deadline: float) -> None:
        url = f"http://{self.host}:{service.port}/health"
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise DemoError(f"the {service.name} service exited ({service.process.returncode}):\n{tail(service.log)}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise DemoError(f"the {service.name} service did not become healthy at {url}:\n{tail(service.log)}")

    def _start_alb(self) -> None:
        config = AlbConfig(
            public_url=self.public_url,
            upstreams={Target.AGENT: self.service_url("agent"), Target.SESSION_BINDING: self.service_url("session_binding")},
            issuer=self.sign_in_issuer,
            client_id=ALB_CLIENT_ID,
            client_secret=self._secrets["alb_client"],
            signer_arn=ALB_ARN,
        )
        self._alb = LocalAlb(config, self.alb_key, state=self.alb_state)
        server = uvicorn.Server(
            uvicorn.Config(
                self._alb.app,
                host=self.host,
                port=self.ports.alb,
                log_level="warning",
                log_config=None,
                access_log=False,
                lifespan="on",
                proxy_headers=False,  # the edge: the peer address is the client, never a header's claim
                # A client's idle connection is closed after the listener's idle timeout, as the ALB does (uvicorn's
                # 5 s would race clients that keep theirs for 5 s, as httpx does: a request sent as it closes is reset).
                timeout_keep_alive=IDLE_TIMEOUT_S,
            )
        )
        # Bound and listening here rather than in the server's thread: a port another process took since it was chosen is an OSError
        # ("Errno 98") that `start` reports and `on_free_ports` tries again on fresh ports, not a thread that died.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.ports.alb))
            sock.listen(2048)  # listening at once: another socket with SO_REUSEADDR may bind the port until then
        except OSError:
            sock.close()
            raise
        self._alb_server, self._alb_socket = server, sock
        self._alb_thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="local-alb", daemon=True)
        self._alb_thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._alb_thread.is_alive():
                raise DemoError(f"the local ALB did not start on {self.public_url}")
            time.sleep(0.01)

    # ------------------------------------------------------------------ for tests and the console

    def verify_arguments(self) -> list[str]:
        """`python -m deploy.verify` arguments for this stack: what differs from an account (the issuers,
        AgentCore's endpoint and the administrator's keys for it, a demo user), given explicitly."""
        keys, user = self.admin_credentials, self.users[0]
        return [
            f"--url={self.public_url}",
            f"--sign-in-issuer={self.sign_in_issuer}",
            f"--agentcore-endpoint={self.emulator.base_url}",
            f"--agentcore-access-key-id={keys['aws_access_key_id']}",
            f"--agentcore-secret-access-key={keys['aws_secret_access_key']}",
            f"--region={self.region}",
            f"--user={user.username}",
            f"--password={user.password}",
        ]

    def write_verify_arguments(self, path: Path) -> None:
        """The arguments, one per line, readable by this user only: `make verify URL=<this stack's URL>` reads them."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("\n".join(self.verify_arguments()) + "\n")

    def rotate_alb_key(self) -> str:
        """The ALB signs with a new key from now on, published at the key endpoint beside the old one (as an ALB
        rotates its keys); the services meet its `kid` for the first time. Returns the new `kid`."""
        key = AlbSigningKey()
        self.key_server.add(key)
        self.alb_key = key
        if self._alb is not None:
            self._alb.key = key
        return key.kid

    def log_size(self, name: str) -> int:
        """How many bytes `name`'s log has: `log_lines(name, since=...)` reads what comes after."""
        return self.services[name].log.stat().st_size

    def log_lines(self, name: str, *, since: int = 0) -> Iterator[dict[str, Any]]:
        """The JSON records in `name`'s log, from byte `since` on (a line cut there is not one)."""
        with self.services[name].log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    yield record


# How a port taken by someone else shows: our own check, uvicorn's bind error, the IdP's.
_PORT_TAKEN = ("is in use", "Errno 98", "EADDRINUSE", "address already in use")
_OUT_OF_TIME = ("issuers not ready after", "did not become healthy", "did not answer on", "was not ACTIVE after")
_BASE_ENV = frozenset(
    {"PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"}
)
_AWS_CREDENTIAL_ENV = frozenset(
    {
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CA_BUNDLE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_STS_REGIONAL_ENDPOINTS",
    }
)
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _bypass_proxies_for_loopback() -> None:
    """Nothing on loopback goes through a proxy: NO_PROXY for this process (urllib, botocore) and,
    through the allow-list, for the services. A proxy set for the real Bedrock still applies there."""
    for name in ("NO_PROXY", "no_proxy"):
        present = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(present + [h for h in _LOOPBACK_NAMES if h not in present])


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait for the graceful shutdown, then SIGKILL."""
    stop_process(process, GRACEFUL_SHUTDOWN_S + 5)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
