"""AgentCore Identity's error shapes, asked with the caller's credentials: the codes the services act on.

The agent fetches a fresh workload token once on `UnauthorizedException` (services/agent/tokens.py)
and treats the transient codes as "busy"; the session binding service turns `ValidationException`
and `ResourceNotFoundException` from `CompleteResourceTokenAuth` into a "cancelled" page
(services/session_binding/completion.py). Every request here is made up, so nothing is created and
no person's token is touched.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from deploy.verify.report import Result, failed, passed, skipped
from deploy.verify.target import Target

DATA_PLANE = "bedrock-agentcore"
# botocore's ValidationExceptionReason values for bedrock-agentcore.
VALIDATION_REASONS = frozenset(
    {"CannotParse", "FieldValidationFailed", "IdempotentParameterMismatchException", "EventInOtherSession", "ResourceConflict"}
)
CREDENTIAL_ERRORS = frozenset({"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"})
USER_ID_MAX = 128  # GetWorkloadAccessTokenForUserId's userId: 1-128 characters in the model


def _ask(name: str, target: Target, call: Callable[[Any], object], *, validate: bool = True) -> Result | ClientError:
    """The error AgentCore answered, or the result that ends the check (skipped, failed)."""
    if target.agentcore is None:
        return skipped(name, target.why_missing("agentcore"))
    try:
        call(target.agentcore.client(DATA_PLANE, validate=validate))
    except ClientError as error:
        return _caller_problem(name, error) or error
    except NoCredentialsError:
        return skipped(name, "no AWS credentials to call AgentCore with")
    except BotoCoreError as error:
        return failed(name, f"AgentCore could not be reached: {type(error).__name__}: {error}")
    return failed(name, "AgentCore accepted a made-up request")


def _caller_problem(name: str, error: ClientError) -> Result | None:
    """A refusal of the caller's credentials, not an answer about the request. IAM words its refusal
    "User: <arn> is not authorized to perform: <action> …"; any other AccessDeniedException is AgentCore's
    answer about the made-up request, and the services do not expect it: a failure, not a skip."""
    message = str(error.response.get("Error", {}).get("Message", ""))
    if _code(error) == "AccessDeniedException" and "is not authorized to perform" in message:
        return skipped(name, "the caller may not make this call (IAM AccessDeniedException): run with credentials that may")
    if _code(error) in CREDENTIAL_ERRORS:
        return failed(name, f"AgentCore did not accept the caller's credentials ({_code(error)}): check the keys and region")
    return None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def _expect(name: str, answer: Result | ClientError, expected: set[str], meaning: str) -> Result:
    if isinstance(answer, Result):
        return answer
    code = _code(answer)
    if code not in expected:
        return failed(name, f"answered {code}, expected {' or '.join(sorted(expected))}: {meaning}")
    return passed(name, f"answered {code} (HTTP {answer.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '?')})")


def made_up_workload_token(target: Target) -> Result:
    name = "agentcore_bad_workload_token"
    answer = _ask(
        name,
        target,
        lambda client: client.get_resource_oauth2_token(
            workloadIdentityToken=f"verify-made-up-{secrets.token_urlsafe(24)}",
            resourceCredentialProviderName=target.provider_name,
            scopes=["openid"],
            oauth2Flow="USER_FEDERATION",
            resourceOauth2ReturnUrl=f"{target.url}/oauth2/session-binding",
        ),
    )
    meaning = "the agent refetches a workload token only on UnauthorizedException"
    return _expect(name, answer, {"UnauthorizedException"}, meaning)


def unknown_workload(target: Target) -> Result:
    name = "agentcore_unknown_workload"
    answer = _ask(
        name,
        target,
        lambda client: client.get_workload_access_token_for_user_id(workloadName=f"verify-unknown-{secrets.token_hex(6)}", userId="verify"),
    )
    meaning = "the emulator answers ResourceNotFoundException; the agent shows 'could not get permission' for it"
    return _expect(name, answer, {"ResourceNotFoundException"}, meaning)


def unknown_session(target: Target) -> Result:
    name = "agentcore_unknown_session"
    answer = _ask(
        name,
        target,
        lambda client: client.complete_resource_token_auth(
            sessionUri=f"urn:ietf:params:oauth:request_uri:verify-{secrets.token_hex(12)}", userIdentifier={"userId": "verify-nobody"}
        ),
    )
    meaning = "the session binding service shows its 'cancelled' page (410) only for these two"
    return _expect(name, answer, {"ValidationException", "ResourceNotFoundException"}, meaning)


def validation_shape(target: Target) -> Result:
    """A userId one character over the model's limit, sent past botocore's own check."""
    name = "agentcore_validation_shape"
    answer = _ask(
        name,
        target,
        lambda client: client.get_workload_access_token_for_user_id(workloadName=target.workload_name, userId="v" * (USER_ID_MAX + 1)),
        validate=False,
    )
    if isinstance(answer, Result):
        return answer
    if _code(answer) != "ValidationException":
        return failed(name, f"a {USER_ID_MAX + 1}-character userId answered {_code(answer)}, expected ValidationException")
    reason = answer.response.get("reason")
    if reason not in VALIDATION_REASONS:
        return failed(name, f"ValidationException without a known `reason` (got {reason!r}): the services log it as the cause")
    fields = [str(f.get("name", "?")) for f in answer.response.get("fieldList") or [] if isinstance(f, dict)]
    listed = f", fieldList names {', '.join(fields)}" if fields else ", no fieldList"
    return passed(name, f"ValidationException with reason {reason}{listed}")
