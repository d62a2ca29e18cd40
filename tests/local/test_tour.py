"""The boto3 tour drives the emulator through every operation the issue lists, and fails when one misbehaves."""

from __future__ import annotations

import pytest

from local.agentcore_identity import Emulator
from local.agentcore_identity.tour import main

OPERATIONS = (
    "CreateWorkloadIdentity",
    "UpdateWorkloadIdentity",
    "CreateOauth2CredentialProvider",
    "GetOauth2CredentialProvider",
    "GetWorkloadAccessToken",
    "GetWorkloadAccessTokenForJWT",
    "GetWorkloadAccessTokenForUserId",
    "GetResourceOauth2Token",
    "CompleteResourceTokenAuth",
    "callback",
)


def test_the_tour_walks_every_operation_against_a_running_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator() as emulator:
        assert main(["--endpoint", emulator.base_url]) == 0
        counted = {op: emulator.count(op) for op in OPERATIONS if op != "callback"}
    out = capsys.readouterr().out
    assert out.rstrip().endswith("every operation answered as documented")
    assert all(counted.values()), counted
    assert "GetWorkloadIdentity" in emulator.counts


def test_the_tour_reports_a_misbehaving_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator() as emulator:
        emulator.faults.script("CompleteResourceTokenAuth", "InternalServerException", 10)
        assert main(["--endpoint", emulator.base_url]) == 1
    assert "tour failed" in capsys.readouterr().err
