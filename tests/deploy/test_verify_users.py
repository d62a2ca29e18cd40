"""`make verify`'s temporary person in an account: created in each Cognito pool with a permanent
password, deleted from every pool it reached, whatever happens in between (moto's server, real boto3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.verify.users import USERNAME_PREFIX, UserSetupError, random_password, temporary_cognito_user
from tests.support.moto_aws import REGION, MotoAws, moto_aws


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoAws:
    monkeypatch.setenv("HOME", str(tmp_path))
    return moto_aws()


@pytest.fixture
def cognito(aws: MotoAws) -> Any:
    return aws.clients(REGION).client("cognito-idp")


def pool(cognito: Any, name: str) -> str:
    """A pool with the stacks' sign-in settings that matter here: email as the username, the password policy."""
    policy = {"MinimumLength": 14, "RequireUppercase": True, "RequireLowercase": True, "RequireNumbers": True, "RequireSymbols": True}
    created = cognito.create_user_pool(PoolName=name, UsernameAttributes=["email"], Policies={"PasswordPolicy": policy})
    return str(created["UserPool"]["Id"])


def usernames(cognito: Any, pool_id: str) -> list[str]:
    return [str(u["Username"]) for u in cognito.list_users(UserPoolId=pool_id)["Users"]]


def test_the_person_exists_in_both_pools_while_the_checks_run_and_nowhere_after(cognito: Any) -> None:
    pools = [pool(cognito, "sign-in"), pool(cognito, "demo-as")]
    deleted: list[str] = []
    with temporary_cognito_user(cognito, pools, deleted=deleted)() as person:
        assert person.username.startswith(USERNAME_PREFIX) and person.username.endswith("@example.com")
        for pool_id in pools:
            user = cognito.admin_get_user(UserPoolId=pool_id, Username=person.username)
            assert user["UserStatus"] == "CONFIRMED", "a permanent password: no change asked at the first sign-in"
            attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
            assert attributes["email_verified"] == "true"
    assert deleted == pools
    assert all(usernames(cognito, pool_id) == [] for pool_id in pools)


def test_the_person_is_deleted_when_a_check_raises(cognito: Any) -> None:
    pools = [pool(cognito, "sign-in"), pool(cognito, "demo-as")]
    with pytest.raises(RuntimeError, match="a later step failed"), temporary_cognito_user(cognito, pools)():
        raise RuntimeError("a later step failed")
    assert all(usernames(cognito, pool_id) == [] for pool_id in pools)


def test_a_failed_creation_in_the_second_pool_removes_the_first_and_says_which_call(cognito: Any) -> None:
    sign_in = pool(cognito, "sign-in")
    missing = f"{REGION}_NoSuchPool1"
    with pytest.raises(UserSetupError, match=f"AdminCreateUser in {missing} failed: ResourceNotFoundException"):  # noqa: SIM117
        with temporary_cognito_user(cognito, [sign_in, missing])():
            pytest.fail("the checks must not run without the person")
    assert usernames(cognito, sign_in) == []


def test_a_user_deleted_by_someone_else_is_not_an_error(cognito: Any) -> None:
    pools = [pool(cognito, "sign-in")]
    with temporary_cognito_user(cognito, pools)() as person:
        cognito.admin_delete_user(UserPoolId=pools[0], Username=person.username)
    assert usernames(cognito, pools[0]) == []


def test_random_passwords_meet_the_pool_policy_and_differ() -> None:
    passwords = {random_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) >= 14
        assert any(c.islower() for c in password) and any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)


def test_a_caller_who_may_not_create_users_is_told_so_not_blamed_on_the_stack(aws: MotoAws, cognito: Any) -> None:
    """The GitHub deploy role, for one, may not: the browser checks are then skipped, not failed."""
    pools = [pool(cognito, "sign-in")]
    keys = aws.iam_user("reader", ["cognito-idp:ListUsers"])
    with aws.iam_enforced():
        limited = aws.clients(REGION, **keys).client("cognito-idp")
        with pytest.raises(UserSetupError, match="AdminCreateUser") as raised:  # noqa: SIM117
            with temporary_cognito_user(limited, pools)():
                pytest.fail("the checks must not run without the person")
    assert raised.value.denied
