"""The person the browser checks sign in as: a temporary Cognito user, or one given on the command line.

In an account, `temporary_cognito_user` creates `verify-<random>@example.com` with a random permanent
password in each pool (the sign-in pool and, for provider demo, the demo authorization server's
pool) and deletes it from every pool it reached when the checks end, whether they passed, failed or
raised. The local issuers have no admin API, so a local run names one of their demo users instead.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

USERNAME_PREFIX = "verify-"
EMAIL_DOMAIN = "example.com"  # reserved for documentation (RFC 2606): no mail can reach anyone
_SYMBOLS = "!#%*+-.=?@^_"


@dataclass(frozen=True)
class Person:
    username: str
    password: str = field(repr=False)


# Opens a person for the browser checks and cleans up after them.
People = Callable[[], AbstractContextManager[Person]]


class UserSetupError(Exception):
    """The temporary user could not be created or deleted; the message says which call failed and why.

    `denied`: the caller may not make the call (its credentials, not the stack, stop the check).
    """

    def __init__(self, message: str, *, denied: bool = False, answered: bool = True) -> None:
        super().__init__(message)
        self.denied = denied
        self.answered = answered  # Cognito answered (the call did not happen); False: no answer, it may have


def given_person(username: str, password: str) -> People:
    """A user that exists already at every issuer (the local demo's alice): nothing to create or delete."""

    @contextmanager
    def person() -> Iterator[Person]:
        yield Person(username, password)

    return person


def random_password(length: int = 24) -> str:
    """Meets the pools' policy (14+ characters with lower, upper, digit and symbol) by construction."""
    groups = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS)
    chars = [secrets.choice(group) for group in groups]
    pool = "".join(groups)
    chars += [secrets.choice(pool) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def temporary_cognito_user(cognito: Any, pool_ids: Sequence[str], *, deleted: list[str] | None = None) -> People:
    """A new user in every pool for the length of the checks, deleted from each in a `finally`.

    `deleted` (optional) collects `pool_id` for each deletion done, so a report or a test can show it.
    """

    @contextmanager
    def person() -> Iterator[Person]:
        who = Person(f"{USERNAME_PREFIX}{secrets.token_hex(6)}@{EMAIL_DOMAIN}", random_password())
        created: list[str] = []
        try:
            for pool_id in pool_ids:
                # Recorded first: a create that timed out after Cognito made the user is still cleaned up
                # (deleting a user that does not exist is not an error).
                created.append(pool_id)
                try:
                    _create(cognito, pool_id, who)
                except UserSetupError as error:
                    if error.answered:
                        created.remove(pool_id)
                    raise
                _set_password(cognito, pool_id, who)
            yield who
        finally:
            _delete_all(cognito, created, who.username, deleted)

    return person


def _create(cognito: Any, pool_id: str, who: Person) -> None:
    try:
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=who.username,
            UserAttributes=[{"Name": "email", "Value": who.username}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",  # no invitation mail
        )
    except (ClientError, BotoCoreError) as error:
        message = f"cognito-idp AdminCreateUser in {pool_id} failed: {_why(error)}"
        raise UserSetupError(message, denied=_denied(error), answered=isinstance(error, ClientError)) from None


def _set_password(cognito: Any, pool_id: str, who: Person) -> None:
    try:
        cognito.admin_set_user_password(UserPoolId=pool_id, Username=who.username, Password=who.password, Permanent=True)
    except (ClientError, BotoCoreError) as error:
        raise UserSetupError(f"cognito-idp AdminSetUserPassword in {pool_id} failed: {_why(error)}", denied=_denied(error)) from None


def _delete_all(cognito: Any, pool_ids: Sequence[str], username: str, deleted: list[str] | None) -> None:
    """Every pool is tried even when one deletion fails; the first failure is raised after the rest."""
    problems: list[str] = []
    for pool_id in pool_ids:
        try:
            cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
        except ClientError as error:
            # Not there (never created, or the pool does not exist): nothing to delete.
            if error.response.get("Error", {}).get("Code") not in ("UserNotFoundException", "ResourceNotFoundException"):
                problems.append(f"cognito-idp AdminDeleteUser {username} in {pool_id} failed: {_why(error)}; delete it by hand")
                continue
        except BotoCoreError as error:
            problems.append(f"cognito-idp AdminDeleteUser {username} in {pool_id} failed: {_why(error)}; delete it by hand")
            continue
        if deleted is not None:
            deleted.append(pool_id)
    if problems:
        raise UserSetupError(problems[0])


def _denied(error: Exception) -> bool:
    # An error body botocore cannot parse leaves the HTTP status as the code; 403 is a refusal (as in preflight).
    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
        "AccessDeniedException",
        "AccessDenied",
        "403",
    )


def _why(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, message = str(details.get("Code", "Unknown")), str(details.get("Message", ""))
        if code == "403" or message.startswith("<"):
            return "AccessDenied" if code == "403" else code  # not a message a person should read
        return f"{code}: {message}".rstrip(": ")
    return f"{type(error).__name__}: {error}"
