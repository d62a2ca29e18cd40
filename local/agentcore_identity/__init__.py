"""AgentCore Identity emulator: a LOCAL STAND-IN for Amazon Bedrock AgentCore Identity, not AWS.

It lets the unchanged production code run offline. boto3 reaches it through the standard endpoint
settings (`AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`, `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`), so
request serialisation, retries and error parsing are botocore's own. It speaks botocore's
rest-json models for:

- control plane (`bedrock-agentcore-control`): CreateWorkloadIdentity, UpdateWorkloadIdentity,
  GetWorkloadIdentity, CreateOauth2CredentialProvider (CustomOauth2 by discovery URL or explicit
  metadata with `clientAuthenticationMethod`; GithubOauth2, GoogleOauth2, MicrosoftOauth2, SlackOauth2;
  the client secret by value or EXTERNAL from Secrets Manager, `providers.py`), GetOauth2CredentialProvider;
- data plane (`bedrock-agentcore`): GetWorkloadAccessToken, GetWorkloadAccessTokenForUserId,
  GetWorkloadAccessTokenForJWT, GetResourceOauth2Token (USER_FEDERATION), CompleteResourceTokenAuth;
- the browser-facing callback `GET /identities/oauth2/callback/<id>?code=&state=`.

Rules enforced like the real service: the return URL must be in the workload identity's allowed
list; workload tokens are opaque and bound server-side to workload and user; a vault miss starts a
code flow with PKCE (S256) at the provider and returns `authorizationUrl` and a `sessionUri`
(`urn:ietf:params:oauth:request_uri:...`) valid 10 minutes (configurable); the callback exchanges
the code (authenticating the client by the provider's method, basic or post, with the code verifier) and redirects the browser to the return URL
with `session_id=<sessionUri>` and, when the caller gave a `customState`, `state=<customState>`
(an assumption about the real service's echo); `CompleteResourceTokenAuth` succeeds only for the
initiating user, once, before expiry, after the callback; the vault is keyed by workload, user,
provider and sorted scopes and refreshes expired tokens with refresh tokens; `forceAuthentication`
always starts a new session. Every request is checked against botocore's model (`model.py`). Errors
use the AWS rest-json shape (status, `x-amzn-errortype`, JSON `message`, and ValidationException's
`reason` and `fieldList`).

Differences from AWS, on purpose: no SigV4 verification, no IAM, state in memory only, JWTs given to
GetWorkloadAccessTokenForJWT / `userToken` are decoded without verification, `customParameters` is
not part of the vault key, five vendors and only the USER_FEDERATION flow exist, and a
provider's callback id is derived from account, region and name (`callback_id()`) rather than random,
so a local stack can register the callback URL at its provider first.

Run alone: `python -m local.agentcore_identity --host 127.0.0.1 --port 8090` (until SIGTERM/SIGINT).
In tests: `with Emulator() as emulator: ...` or `Emulator().start()` / `.stop()`.

One HTTP front (`server.py`: wire format, request-rate quotas (`quotas.py`), faults, counts, recorded calls) serves two backends: the
`Emulator`'s `IdentityService` above (make demo, the end-to-end, fault and load tests), and
`AgentCoreStandIn`'s scripted data plane (`scripted.py`) for the tests of one service, which call it
with sessions they made up and script its answers.
"""

from local.agentcore_identity.faults import Fault, Faults
from local.agentcore_identity.quotas import Quotas
from local.agentcore_identity.scripted import RAW_MESSAGE, AgentCoreStandIn
from local.agentcore_identity.server import Call, Emulator, IdentityServer
from local.agentcore_identity.service import CALLBACK_PATH, ApiError, IdentityService, callback_id, jwt_subject

__all__ = [
    "CALLBACK_PATH",
    "RAW_MESSAGE",
    "AgentCoreStandIn",
    "ApiError",
    "Call",
    "Emulator",
    "Fault",
    "Faults",
    "IdentityServer",
    "IdentityService",
    "Quotas",
    "callback_id",
    "jwt_subject",
]
