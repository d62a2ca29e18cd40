"""Amazon DynamoDB on this machine: a LOCAL STAND-IN, for `make demo` and the tests.

dynalite (npm, pinned in package.json) serves DynamoDB's JSON protocol from memory in a child Node
process. boto3 reaches it as it reaches DynamoDB: with `endpoint_url=`, or, for code that builds its
own client (the services), through boto3's standard `AWS_ENDPOINT_URL_DYNAMODB`; any credentials do.

dynalite 4.0.0 serves neither TransactWriteItems nor TransactGetItems, and the demo API writes every
note with TransactWriteItems. So the address clients use (`endpoint`) is a small front in this
process: it forwards every request unchanged to dynalite on a private loopback port, and answers the
two transaction calls itself, with dynalite's own conditional writes (below). The front runs in the
process that started it, and dynalite gets SIGTERM when that process dies (Linux), so a killed run
leaves nothing behind.

The table shapes here (`NOTES_TABLE`, `BINDING_TABLE`, `CONNECTIONS_TABLE`) are the one source for
creating tables locally; `tests/local/test_tables.py` checks them against what the CDK synthesizes
(the connections table once a stack makes it).

How it differs from DynamoDB:

* SigV4 and IAM only after `check_iam(principals, account)` (the local stack does it): then each
  request must be signed by a known principal whose synthesized statements allow it
  (`local/iam/dynamodb.py`); before, any credentials pass. No capacity, throttling, encryption, backups or streams.
  State is in memory and ends with `stop()`. Region is ignored: every client sees the same tables.
* TTL: dynalite answers UpdateTimeToLive with UnknownOperationException, so `create_table` enables no
  TTL and nothing expires. Code must compare the expiry attribute itself (it must in AWS as well:
  TTL deletes items up to days late).
* Transactions are applied item by item as conditional writes, under one lock that single-item
  writes through the front also take. When a condition fails, the items already written are put
  back, and the answer is TransactionCanceledException with `CancellationReasons`, as DynamoDB's.
  Reads do not take the lock, so a read during a transaction can see part of it (even a part that
  is then undone). Transactions never conflict (no TransactionConflict), and `ClientRequestToken`
  is not remembered.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from local.iam.dynamodb import Request, refusal
from local.iam.principals import ADMINISTRATOR, Principals
from local.processes import die_with_parent, stop_process
from local.serving import JsonHandler, LoopbackServer

REPO_ROOT = Path(__file__).resolve().parents[1]
DYNALITE_CLI = REPO_ROOT / "node_modules" / "dynalite" / "cli.js"
DEFAULT_REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}  # dynalite checks no signature
MAX_TRANSACT_ITEMS = 100

_TARGET_PREFIX = "DynamoDB_20120810"
_CONTENT_TYPE = "application/x-amz-json-1.0"
_ERROR_NAMESPACE = "com.amazonaws.dynamodb.v20120810"
_SERVED = frozenset({"TransactWriteItems", "TransactGetItems"})  # answered by the front, not forwarded
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})  # forwarded under the transaction lock
_WRITE_KINDS = ("Put", "Update", "Delete", "ConditionCheck")
_CONDITION_FIELDS = ("ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server", "content-type"})


class LocalDynamoDBError(RuntimeError):
    """dynalite is missing or did not start; the message says what to do and ends with its output."""


# ---------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableShape:
    """A table as `create_table` makes it: key attributes as (name, type), an optional TTL attribute."""

    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None = None
    ttl_attribute: str | None = None
    billing_mode: str = "PAY_PER_REQUEST"

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.partition_key[0], "KeyType": "HASH"}]
        if self.sort_key is not None:
            schema.append({"AttributeName": self.sort_key[0], "KeyType": "RANGE"})
        return schema

    def attribute_definitions(self) -> list[dict[str, str]]:
        keys = [self.partition_key] if self.sort_key is None else [self.partition_key, self.sort_key]
        return [{"AttributeName": name, "AttributeType": kind} for name, kind in keys]


# The session binding service's ledger (stacks/constructs/binding_ledger.py).
BINDING_TABLE = TableShape(partition_key=("session", "S"), ttl_attribute="expires_at")
# The demo API's notes (stacks/constructs/demo_api.py, services/demo_api/notes.py).
NOTES_TABLE = TableShape(partition_key=("sub", "S"), sort_key=("id", "S"))
# The connections registry (services/common/connections.py): per person and provider, no TTL (records
# are kept until the person's data is removed).
CONNECTIONS_TABLE = TableShape(partition_key=("user", "S"), sort_key=("provider", "S"))


def create_table(client: Any, name: str, shape: TableShape, *, timeout_s: float = 10.0) -> None:
    """Create table `name` as `shape` says, wait until it is ACTIVE, then enable TTL where the shape has one."""
    client.create_table(
        TableName=name,
        KeySchema=shape.key_schema(),
        AttributeDefinitions=shape.attribute_definitions(),
        BillingMode=shape.billing_mode,
    )
    deadline = time.monotonic() + timeout_s
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise LocalDynamoDBError(f"table {name} was not ACTIVE after {timeout_s:g} s")
        time.sleep(0.05)
    if shape.ttl_attribute is not None:
        try:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": shape.ttl_attribute})
        except ClientError as exc:
            # dynalite 4.0.0 has no UpdateTimeToLive: locally TTL stays off and nothing expires. The
            # services compare `expires_at` themselves, as they must in AWS (TTL deletes late).
            if exc.response.get("Error", {}).get("Code") not in {"UnknownOperationException", "UnknownOperation"}:
                raise


# ---------------------------------------------------------------------------------------- the server


class LocalDynamoDB:
    """dynalite behind the front, on `host`:`port` (0: a port the kernel picks), as a context manager.

    `start()` returns once dynalite answers ListTables; `endpoint` is then the URL for boto3, and
    `client()` a client for it. `stop()` stops the front, then dynalite (SIGTERM, then SIGKILL); it is
    safe to call twice and after a failed start. Start it from the thread that lives as long as it
    should (the main thread): dynalite gets SIGTERM when that thread ends.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        region: str = DEFAULT_REGION,
        node: str = "node",
        start_timeout_s: float = 15.0,
        attempts: int = 3,
        backend_port: int = 0,
    ) -> None:
        """`backend_port`: dynalite's own (private) port; 0 picks a free one, which a caller that has
        chosen other ports but not bound them yet (the demo stack) must avoid by naming one."""
        self.host, self.region = host, region
        self._backend_port = backend_port
        self._port, self._node = port, node
        self._start_timeout_s, self._attempts = start_timeout_s, attempts
        self._front: _Front | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def port(self) -> int:
        if self._front is None:
            raise LocalDynamoDBError("the local DynamoDB is not started")
        return int(self._front.server.httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def backend_endpoint(self) -> str:
        """dynalite itself, without the front: for a client that needs no transactions and every bit of
        speed (the benchmark of the binding service, whose ledger makes single-item conditional writes)."""
        if self._front is None or self._front.upstream is None:
            raise LocalDynamoDBError("the local DynamoDB is not started")
        return f"http://{self._front.upstream[0]}:{self._front.upstream[1]}"

    @property
    def backend_pid(self) -> int:
        if self._process is None:
            raise LocalDynamoDBError("the local DynamoDB is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._front is not None and self._process is not None and self._process.poll() is None

    def check_iam(self, principals: Principals | None, account: str) -> None:
        """Check every request's signature and IAM from now on (None: stop checking)."""
        if self._front is None:
            raise LocalDynamoDBError("the local DynamoDB is not started")
        self._front.principals, self._front.account, self._front.region = principals, account, self.region

    def client(self, region: str | None = None) -> Any:
        """A boto3 DynamoDB client for this server: short timeouts, never a proxy; dummy credentials, or the
        administrator's once IAM is checked."""
        config = Config(
            connect_timeout=2,
            read_timeout=10,
            retries={"mode": "standard", "max_attempts": 2},
            proxies={},  # not None: botocore would read the proxy environment variables then
        )
        principals = self._front.principals if self._front is not None else None
        keys = CREDENTIALS
        if principals is not None:
            admin = principals[ADMINISTRATOR]
            keys = {"aws_access_key_id": admin.access_key_id, "aws_secret_access_key": admin.secret_access_key}
        return boto3.session.Session().client(
            "dynamodb", endpoint_url=self.endpoint, region_name=region or self.region, config=config, **keys
        )

    def output(self, limit: int = 4000) -> str:
        """The end of dynalite's stdout and stderr (for error messages)."""
        if self._output is None:
            return ""
        fd = self._output.fileno()
        size = os.fstat(fd).st_size
        # pread leaves the shared file offset alone: the child keeps writing where it was.
        return os.pread(fd, limit, max(0, size - limit)).decode(errors="replace").strip()

    def start(self) -> Self:
        if self._front is not None:
            raise LocalDynamoDBError("already started")
        if not DYNALITE_CLI.is_file():
            raise LocalDynamoDBError(
                f"dynalite is not installed ({DYNALITE_CLI.relative_to(REPO_ROOT)} is missing): run `make install` "
                "(npm ci installs the version pinned in package.json)"
            )
        try:
            # The public port first: if it is taken, nothing else starts.
            try:
                front = _Front(self.host, self._port)
            except OSError as exc:
                raise LocalDynamoDBError(f"port {self._port} (dynamodb) on {self.host} is in use or not usable: {exc}") from None
            self._front = front
            front.upstream = (self.host, self._start_dynalite())
            front.server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_dynalite(self) -> int:
        """dynalite on a free private port; a port taken between choosing and binding is tried again."""
        attempts = 1 if self._backend_port else self._attempts
        for attempt in range(1, attempts + 1):
            port = self._backend_port or _free_port(self.host)
            self._output = tempfile.TemporaryFile(prefix="dynalite-")  # noqa: SIM115 - closed in stop()
            command = [
                self._node,
                str(DYNALITE_CLI),
                "--host",
                self.host,
                "--port",
                str(port),
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ]
            try:
                self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    command,
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=self._output,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,  # noqa: PLW1509 - one C call, see local/processes.py
                )
            except OSError as exc:
                raise LocalDynamoDBError(
                    f"dynalite did not start: cannot run {self._node!r} ({exc.strerror}); install Node.js 20.19 or later"
                ) from None
            if self._await_answer(port):
                return port
            if attempt == attempts:
                raise LocalDynamoDBError(f"dynalite did not start: {attempts} port(s) in a row were taken on {self.host}:\n{self.output()}")
            self._stop_dynalite()
        raise AssertionError("unreachable")

    def _await_answer(self, port: int) -> bool:
        """True once dynalite answers ListTables; False if its port was taken; LocalDynamoDBError otherwise."""
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                output = self.output()
                if "EADDRINUSE" in output:
                    return False
                raise LocalDynamoDBError(f"dynalite exited with code {code} before answering on {self.host}:{port}:\n{output}")
            try:
                if _call(self.host, port, "ListTables", {"Limit": 1}, timeout_s=1)[0] == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LocalDynamoDBError(
                    f"dynalite did not answer on http://{self.host}:{port} within {self._start_timeout_s:g} s:\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, timeout_s: float = 5.0) -> None:
        front, self._front = self._front, None
        if front is not None:
            front.server.stop()
            front.connections.close()
        self._stop_dynalite(timeout_s)

    def _stop_dynalite(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s)
        output, self._output = self._output, None
        if output is not None:
            output.close()

    def __enter__(self) -> Self:
        return self.start() if self._front is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _call_headers(operation: str) -> dict[str, str]:
    """The header shapes dynalite insists on for a DynamoDB JSON call (it checks no signature)."""
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return {
        "content-type": _CONTENT_TYPE,
        "x-amz-target": f"{_TARGET_PREFIX}.{operation}",
        "x-amz-date": now,
        "authorization": f"AWS4-HMAC-SHA256 Credential=local/{now[:8]}/{DEFAULT_REGION}/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=local",
    }


def _answer(data: bytes) -> dict[str, Any]:
    answer = json.loads(data) if data else {}
    return answer if isinstance(answer, dict) else {}


def _call(host: str, port: int, operation: str, payload: dict[str, Any], *, timeout_s: float = 30.0) -> tuple[int, dict[str, Any]]:
    """One DynamoDB JSON call to dynalite on a connection of its own (the front's calls reuse theirs: `_Front.call`)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("POST", "/", body=json.dumps(payload).encode(), headers=_call_headers(operation))
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    return response.status, _answer(data)


# ---------------------------------------------------------------------------------------- the front


class _Refused(Exception):
    """An error answer, as DynamoDB's JSON protocol carries it."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("__type"))
        self.status, self.payload = status, payload

    @property
    def code(self) -> str:
        return str(self.payload.get("__type", "")).rpartition("#")[2]


def _error(code: str, message: str, status: int = 400) -> _Refused:
    return _Refused(status, {"__type": f"{_ERROR_NAMESPACE}#{code}", "message": message})


@dataclass(frozen=True)
class _Write:
    """One action of a TransactWriteItems request, with the key of the item it acts on."""

    kind: str
    spec: dict[str, Any]
    table: str
    key: dict[str, Any]

    def conditions(self) -> dict[str, Any]:
        return {name: self.spec[name] for name in _CONDITION_FIELDS if name in self.spec}


class _Connections:
    """Keep-alive connections to dynalite, the most recently used first: a TCP connection opened and closed per
    request cost both processes more than the request did. A connection idle for longer than IDLE_S is closed
    rather than reused: dynalite's Node server closes idle ones after 5 s (Node's default), and a request sent
    on a connection it is closing would get no answer."""

    IDLE_S = 2.0
    MAX_IDLE = 16
    # How a kept connection shows that dynalite closed it before reading the request: nothing was done, so the
    # request goes again on a new connection (once).
    _STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self) -> None:
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()
        self._closed = False

    def exchange(
        self, address: tuple[str, int], method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request and its whole answer (OSError and http.client's errors are raised, the connection closed)."""
        connection, reused = self._take(address)
        try:
            return self._once(connection, method, path, body, headers)
        except self._STALE:
            if not reused:
                raise
        return self._once(http.client.HTTPConnection(*address, timeout=30), method, path, body, headers)

    def _once(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._give(connection)
        return response, data

    def _take(self, address: tuple[str, int]) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection to `address` idle for less than IDLE_S (and True), or a new one (and False)."""
        now = time.monotonic()
        stale = []
        found = None
        with self._lock:
            while self._idle and found is None:
                since, connection = self._idle.pop()
                if now - since < self.IDLE_S and (connection.host, connection.port) == address:
                    found = connection
                else:
                    stale.append(connection)
        for connection in stale:
            connection.close()
        return (found, True) if found is not None else (http.client.HTTPConnection(*address, timeout=30), False)

    def _give(self, connection: http.client.HTTPConnection) -> None:
        surplus: http.client.HTTPConnection | None = connection  # a closed pool keeps nothing
        with self._lock:
            if not self._closed:
                self._idle.append((time.monotonic(), connection))
                surplus = self._idle.pop(0)[1] if len(self._idle) > self.MAX_IDLE else None  # full: the oldest goes
        if surplus is not None:
            surplus.close()

    def close(self) -> None:
        """Close the kept connections; a request still in flight closes its own when it ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, connection in idle:
            connection.close()


class _Front:
    """The public port: forwards to dynalite, answers the transaction calls."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream: tuple[str, int] = (host, 0)  # set once dynalite answers, before the server starts
        self.connections = _Connections()
        self.lock = threading.Lock()
        self.principals: Principals | None = None
        self.account = "123456789012"
        self.region = DEFAULT_REGION
        self.server = LoopbackServer(_handler_for(self), host=host, port=port, name="local-dynamodb")

    # -------------------------------------------------------------- forwarding

    def forward(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes, operation: str
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        sent = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP or name.lower() == "content-type"}
        if operation in _WRITES:
            with self.lock:
                return self._forward(method, path, sent, body)
        return self._forward(method, path, sent, body)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        try:
            response, data = self.connections.exchange(self.upstream, method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            refused = _error("InternalServerError", f"the local DynamoDB (dynalite) is not answering: {exc}", 500)
            return refused.status, _CONTENT_TYPE, [], json.dumps(refused.payload).encode()
        kept = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
        return response.status, response.getheader("content-type", _CONTENT_TYPE), kept, data

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        response, data = self.connections.exchange(self.upstream, "POST", "/", json.dumps(payload).encode(), _call_headers(operation))
        status, answer = response.status, _answer(data)
        if status != 200:
            raise _Refused(status, answer)
        return answer

    # -------------------------------------------------------------- transactions

    def serve(self, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            try:
                request = json.loads(body)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                raise _Refused(400, {"__type": "com.amazon.coral.service#SerializationException"})
            if operation == "TransactWriteItems":
                self._transact_write(request)
                return 200, {}
            return 200, self._transact_get(request)
        except _Refused as refused:
            return refused.status, refused.payload
        except OSError as exc:
            down = _error("InternalServerError", f"the local DynamoDB (dynalite) is not answering: {exc}", 500)
            return down.status, down.payload

    def _transact_write(self, request: dict[str, Any]) -> None:
        writes = [self._parse_write(entry) for entry in _transact_items(request)]
        items = [(write.table, json.dumps(write.key, sort_keys=True)) for write in writes]
        if len(set(items)) != len(items):
            raise _error("ValidationException", "Transaction request cannot include multiple operations on one item")
        with self.lock:
            done: list[tuple[_Write, dict[str, Any] | None]] = []
            for index, write in enumerate(writes):
                try:
                    old = self._apply(write)
                except _Refused as refused:
                    self._undo(done)
                    if refused.code != "ConditionalCheckFailedException":
                        raise
                    raise self._cancelled(writes, index) from None
                if write.kind != "ConditionCheck":
                    done.append((write, old))

    def _parse_write(self, entry: Any) -> _Write:
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in _WRITE_KINDS:
            raise _error("ValidationException", f"each TransactItems entry must hold exactly one of {', '.join(_WRITE_KINDS)}")
        kind, spec = next(iter(entry.items()))
        required = {
            "Put": ("Item",),
            "Update": ("Key", "UpdateExpression"),
            "Delete": ("Key",),
            "ConditionCheck": ("Key", "ConditionExpression"),
        }
        if not isinstance(spec, dict) or not isinstance(spec.get("TableName"), str) or any(name not in spec for name in required[kind]):
            raise _error("ValidationException", f"{kind} needs TableName and {' and '.join(required[kind])}")
        table = spec["TableName"]
        key_names = [key["AttributeName"] for key in self.call("DescribeTable", {"TableName": table})["Table"]["KeySchema"]]
        source = spec["Item"] if kind == "Put" else spec["Key"]
        if not isinstance(source, dict) or any(name not in source for name in key_names):
            raise _error("ValidationException", "The provided key element does not match the schema")
        return _Write(kind, spec, table, {name: source[name] for name in key_names})

    def _apply(self, write: _Write) -> dict[str, Any] | None:
        """Write one action as a conditional single-item write; the item as it was before (None: absent)."""
        base = {"TableName": write.table, **write.conditions(), "ReturnValues": "ALL_OLD"}
        if write.kind == "Put":
            answer = self.call("PutItem", {**base, "Item": write.spec["Item"]})
        elif write.kind == "Update":
            answer = self.call("UpdateItem", {**base, "Key": write.spec["Key"], "UpdateExpression": write.spec["UpdateExpression"]})
        elif write.kind == "Delete":
            answer = self.call("DeleteItem", {**base, "Key": write.spec["Key"]})
        else:
            self._check(write)
            return None
        old = answer.get("Attributes")
        return old if isinstance(old, dict) else None

    def _check(self, write: _Write) -> None:
        """Evaluate the action's condition with dynalite without changing the item: put it back as it
        is, or delete it where there is none (ConditionalCheckFailedException when it does not hold)."""
        current = self.call("GetItem", {"TableName": write.table, "Key": write.key, "ConsistentRead": True}).get("Item")
        if current is not None:
            self.call("PutItem", {"TableName": write.table, "Item": current, **write.conditions()})
        else:
            self.call("DeleteItem", {"TableName": write.table, "Key": write.key, **write.conditions()})

    def _holds(self, write: _Write) -> bool:
        if "ConditionExpression" not in write.spec:
            return True
        try:
            self._check(write)
        except _Refused as refused:
            if refused.code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _undo(self, done: list[tuple[_Write, dict[str, Any] | None]]) -> None:
        try:
            for write, old in reversed(done):
                if old is not None:
                    self.call("PutItem", {"TableName": write.table, "Item": old})
                else:
                    self.call("DeleteItem", {"TableName": write.table, "Key": write.key})
        except _Refused as refused:
            raise _error("InternalServerError", f"a cancelled transaction could not be undone: {refused.payload}", 500) from None

    def _cancelled(self, writes: list[_Write], failed: int) -> _Refused:
        """TransactionCanceledException with one reason per action, against the state before the
        transaction (already restored): every action's condition is evaluated, as DynamoDB does."""
        reasons: list[dict[str, Any]] = []
        for index, write in enumerate(writes):
            if index == failed or (index > failed and not self._holds(write)):
                reason: dict[str, Any] = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                if write.spec.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                    item = self.call("GetItem", {"TableName": write.table, "Key": write.key, "ConsistentRead": True}).get("Item")
                    if item is not None:
                        reason["Item"] = item
                reasons.append(reason)
            else:
                reasons.append({"Code": "None"})
        codes = ", ".join(reason["Code"] for reason in reasons)
        return _Refused(
            400,
            {
                "__type": f"{_ERROR_NAMESPACE}#TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                "CancellationReasons": reasons,
            },
        )

    def _transact_get(self, request: dict[str, Any]) -> dict[str, Any]:
        gets = []
        for entry in _transact_items(request):
            spec = entry.get("Get") if isinstance(entry, dict) and len(entry) == 1 else None
            if not isinstance(spec, dict) or "TableName" not in spec or "Key" not in spec:
                raise _error("ValidationException", "each TransactItems entry must be {'Get': {TableName, Key, ...}}")
            fields = ("TableName", "Key", "ProjectionExpression", "ExpressionAttributeNames")
            gets.append({name: spec[name] for name in fields if name in spec} | {"ConsistentRead": True})
        with self.lock:  # no write between the reads
            answers = [self.call("GetItem", get) for get in gets]
        return {"Responses": [{"Item": answer["Item"]} if "Item" in answer else {} for answer in answers]}


def _transact_items(request: dict[str, Any]) -> list[Any]:
    items = request.get("TransactItems")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_TRANSACT_ITEMS:
        raise _error("ValidationException", f"TransactItems must hold 1 to {MAX_TRANSACT_ITEMS} actions")
    return items


def _handler_for(front: _Front) -> type[JsonHandler]:
    class FrontHandler(JsonHandler):
        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            targets = self.headers.get_all("x-amz-target") or []
            operation = targets[-1].rpartition(".")[2] if targets else ""  # one value: a repeat is refused below
            if front.principals is not None:
                request = Request(self.command, self.path, tuple(self.headers.items()), body, operation)
                refused = refusal(front.principals, request, region=front.region, account=front.account)
                if refused is not None:
                    self.send_body(refused[0], json.dumps(refused[1]).encode(), _CONTENT_TYPE)
                    return
            if self.command == "POST" and operation in _SERVED:
                status, payload = front.serve(operation, body)
                self.send_body(status, json.dumps(payload).encode(), _CONTENT_TYPE)
                return
            status, content_type, headers, data = front.forward(self.command, self.path, self.headers.items(), body, operation)
            self.send_body(status, data, content_type, headers)

        do_POST = _relay
        do_GET = _relay

    return FrontHandler
