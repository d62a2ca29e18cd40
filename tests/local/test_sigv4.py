"""SigV4 checks for the stand-ins (`local/iam/sigv4.py`) on requests really signed by botocore and sent by boto3."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.utils import percent_encode_sequence

from local.iam.sigv4 import SignatureError, Signed, access_key_of, canonical_request, verify

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {ACCESS_KEY: SECRET_KEY}
WRONG_SECRET = "not-the-secret"
HOST = "127.0.0.1:8443"


class Request:
    """A request signed by botocore, as a server receives it: method, path and query, headers, body."""

    def __init__(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        service: str = "dynamodb",
        params: dict[str, str] | None = None,
        secret: str = SECRET_KEY,
    ) -> None:
        self.aws = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params or {})
        self.auth = SigV4Auth(Credentials(ACCESS_KEY, secret), service, "us-east-1")
        self.auth.add_auth(self.aws)
        prepared = self.aws.prepare()
        parts = urlsplit(prepared.url)
        self.method = method
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        # What the HTTP client adds on the wire: Host (botocore signs it from the URL).
        self.headers = {"Host": parts.netloc} | dict(prepared.headers.items())
        self.body = body

    def verify(self, **changes: Any) -> Signed:
        fields = {"method": self.method, "target": self.target, "headers": self.headers, "body": self.body} | changes
        return verify(fields["method"], fields["target"], fields["headers"], fields["body"], SECRETS.get, now=changes.get("now"))


def dynamodb_post() -> Request:
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    body = json.dumps({"TableName": "ledger", "Key": {"pk": {"S": "user#1"}}}).encode()
    return Request("POST", f"http://{HOST}/", body, headers)


SIGNED = [
    ("dynamodb-json", dynamodb_post),
    (
        "oauth2-token",
        lambda: Request(
            "POST",
            f"http://{HOST}/identities/oauth2/token",
            b'{"resourceCredentialProviderName":"demo","scopes":["openid"],"workloadIdentityToken":"t"}',
            {"Content-Type": "application/json"},
            service="bedrock-agentcore",
        ),
    ),
    (
        "workload-token",
        lambda: Request(
            "POST",
            f"http://{HOST}/identities/GetWorkloadAccessTokenForUserId",
            b'{"workloadName":"agent","userId":"user-1"}',
            {"Content-Type": "application/json"},
            service="bedrock-agentcore",
        ),
    ),
    (
        "get-with-query",
        lambda: Request(
            "GET",
            f"http://{HOST}/identities/providers/arn%3Aaws%3Aexample/a%20b",
            params={"name": "a b/c+d=e&f", "unicode": "ünï~code", "empty": "", "Zed": "1", "a": "*"},
            service="bedrock-agentcore",
        ),
    ),
    (
        # How botocore's clients send a query: already in the URL, encoded by percent_encode_sequence.
        "client-query",
        lambda: Request(
            "GET",
            f"http://{HOST}/identities/x?" + percent_encode_sequence([("b", "x y+z"), ("a", "2"), ("a", "1"), ("c", "ä/€")]),
            service="bedrock-agentcore",
        ),
    ),
    ("dot-segments", lambda: Request("GET", f"http://{HOST}/a/./b/../c//d/", service="bedrock-agentcore")),
]


@pytest.mark.parametrize("make", [make for _, make in SIGNED], ids=[name for name, _ in SIGNED])
def test_requests_signed_by_botocore_verify(make: Any) -> None:
    request = make()
    signed = request.verify()
    assert signed == Signed(ACCESS_KEY, "us-east-1", request.auth._service_name)
    assert access_key_of(request.headers) == ACCESS_KEY
    # Header names in any case reach the same answer.
    assert request.verify(headers={k.upper(): v for k, v in request.headers.items()}) == signed


@pytest.mark.parametrize("make", [make for _, make in SIGNED], ids=[name for name, _ in SIGNED])
def test_the_canonical_request_is_botocores(make: Any) -> None:
    request = make()
    header = request.headers["Authorization"]
    signed_headers = tuple(header.split("SignedHeaders=")[1].split(",")[0].split(";"))
    lowered = {k.lower(): v for k, v in request.headers.items()}
    ours = canonical_request(request.method, request.target, lowered, request.body, signed_headers)
    del request.aws.headers["Authorization"]  # added after signing; botocore would sign it now
    assert ours == request.auth.canonical_request(request.aws)


def test_the_query_string_needs_its_encoding() -> None:
    request = dict(SIGNED)["get-with-query"]()
    assert "%2F" in request.target and "%C3%BC" in request.target and "%3A" in request.target
    assert request.verify().service == "bedrock-agentcore"
    client_style = dict(SIGNED)["client-query"]()
    assert "x%20y%2Bz" in client_style.target and "%E2%82%AC" in client_style.target
    assert client_style.verify().service == "bedrock-agentcore"


def rejected(request: Request, **changes: Any) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        request.verify(**changes)
    assert caught.value.status == 403
    return caught.value


def test_a_tampered_body_is_refused() -> None:
    request = dynamodb_post()
    error = rejected(request, body=request.body.replace(b"user#1", b"user#2"))
    assert error.code == "InvalidSignatureException"
    assert error.message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method."
    )


def test_a_tampered_signed_header_is_refused_but_an_unsigned_one_is_not() -> None:
    request = dynamodb_post()
    tampered = request.headers | {"X-Amz-Target": "DynamoDB_20120810.DeleteItem"}
    assert rejected(request, headers=tampered).code == "InvalidSignatureException"
    assert rejected(request, headers=request.headers | {"Host": "127.0.0.1:9999"}).code == "InvalidSignatureException"
    dropped = {k: v for k, v in request.headers.items() if k != "X-Amz-Target"}
    assert rejected(request, headers=dropped).code == "InvalidSignatureException"
    assert request.verify(headers=request.headers | {"User-Agent": "another"}).access_key_id == ACCESS_KEY
    # Signed header values are compared trimmed, runs of spaces folded.
    assert request.verify(headers=request.headers | {"X-Amz-Target": "  DynamoDB_20120810.GetItem "}).region == "us-east-1"


def test_a_tampered_path_query_or_method_is_refused() -> None:
    request = dict(SIGNED)["get-with-query"]()
    assert rejected(request, target=request.target.replace("a%20b", "a%20c")).code == "InvalidSignatureException"
    assert rejected(request, target=request.target.replace("Zed=1", "Zed=2")).code == "InvalidSignatureException"
    assert rejected(request, method="DELETE").code == "InvalidSignatureException"


def test_a_content_hash_that_is_not_the_bodys_is_refused() -> None:
    request = dynamodb_post()
    headers = request.headers | {"X-Amz-Content-SHA256": "0" * 64}
    assert rejected(request, headers=headers).code == "InvalidSignatureException"


def test_the_wrong_secret_is_refused() -> None:
    request = Request("POST", f"http://{HOST}/", b"{}", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, secret=WRONG_SECRET)
    assert rejected(request).code == "InvalidSignatureException"


def test_an_unknown_access_key_is_unrecognized() -> None:
    request = dynamodb_post()
    headers = request.headers | {"Authorization": request.headers["Authorization"].replace(ACCESS_KEY, "AKIAUNKNOWNKEY000000")}
    error = rejected(request, headers=headers)
    assert (error.code, error.message) == ("UnrecognizedClientException", "The security token included in the request is invalid.")
    assert access_key_of(headers) == "AKIAUNKNOWNKEY000000"


def test_no_authorization_header_is_a_missing_token() -> None:
    request = dynamodb_post()
    unsigned = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    assert rejected(request, headers=unsigned).code == "MissingAuthenticationTokenException"
    assert access_key_of(unsigned) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        lambda h: h.split(", Signature=")[0],
        lambda h: h.replace("SignedHeaders=", "Signed="),
        lambda h: h.replace("Credential=", "Cred="),
        lambda h: h.replace("/aws4_request", ""),
        lambda h: h.replace("/aws4_request", "/aws5_request"),
        lambda h: "garbage",
    ],
    ids=["algorithm", "no-signature", "no-signed-headers", "no-credential", "short-scope", "terminator", "garbage"],
)
def test_a_malformed_authorization_header_is_incomplete(mangle: Any) -> None:
    request = dynamodb_post()
    headers = request.headers | {"Authorization": mangle(request.headers["Authorization"])}
    assert rejected(request, headers=headers).code == "IncompleteSignatureException"


def test_a_missing_or_malformed_date_is_incomplete() -> None:
    request = dynamodb_post()
    undated = {k: v for k, v in request.headers.items() if k.lower() != "x-amz-date"}
    assert rejected(request, headers=undated).code == "IncompleteSignatureException"
    assert rejected(request, headers=request.headers | {"X-Amz-Date": "yesterday"}).code == "IncompleteSignatureException"


def test_a_signature_more_than_15_minutes_off_is_expired() -> None:
    request = dynamodb_post()
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert request.verify(now=signed_at + timedelta(minutes=14)).service == "dynamodb"
    assert request.verify(now=signed_at - timedelta(minutes=14)).service == "dynamodb"
    error = rejected(request, now=signed_at + timedelta(minutes=16))
    later = (signed_at + timedelta(minutes=16)).strftime("%Y%m%dT%H%M%SZ")
    earliest = (signed_at + timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ")
    assert error.code == "InvalidSignatureException"
    assert error.message == f"Signature expired: {request.headers['X-Amz-Date']} is now earlier than {earliest} ({later} - 15 min.)"
    early = rejected(request, now=signed_at - timedelta(minutes=16))
    assert early.code == "InvalidSignatureException" and early.message.startswith("Signature not yet current:")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[Signed]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            signed = verify(self.command, self.path, dict(self.headers.items()), body, SECRETS.get)
        except SignatureError as error:
            self._answer(error.status, {"__type": error.code, "message": error.message}, [("x-amzn-errortype", error.code)])
            return
        self.seen.append(signed)
        self._answer(200, {"TableNames": []}, [])

    def _answer(self, status: int, payload: Any, headers: list[tuple[str, str]]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in [("content-type", "application/x-amz-json-1.0"), ("content-length", str(len(data))), *headers]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def dynamodb_endpoint() -> Iterator[tuple[str, list[Signed]]]:
    seen: list[Signed] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def client(endpoint: str, secret: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def test_a_real_boto3_client_is_verified_end_to_end(dynamodb_endpoint: tuple[str, list[Signed]]) -> None:
    endpoint, seen = dynamodb_endpoint
    assert client(endpoint, SECRET_KEY).list_tables()["TableNames"] == []
    assert seen == [Signed(ACCESS_KEY, "us-east-1", "dynamodb")]
    with pytest.raises(ClientError) as caught:
        client(endpoint, WRONG_SECRET).list_tables()
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert seen == [Signed(ACCESS_KEY, "us-east-1", "dynamodb")]
