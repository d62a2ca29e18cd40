"""The one list of environment variable names (`services/common/environment.py`) and the settings classes
agree: a setting cannot be added, renamed or dropped without its variable's name in the list."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from services.agent.settings import AgentSettings
from services.common import environment
from services.common.settings import ServiceSettings, load_settings
from services.demo_api.settings import DemoApiSettings
from services.session_binding.settings import BindingSettings

SERVICES = [(AgentSettings, environment.AGENT), (BindingSettings, environment.SESSION_BINDING), (DemoApiSettings, environment.DEMO_API)]


def variables_read_by(settings: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads: each field's name upper-cased (no prefix, no aliases)."""
    assert settings.model_config.get("env_prefix", "") == ""
    assert all(field.alias is None and field.validation_alias is None for field in settings.model_fields.values())
    return {name.upper() for name in settings.model_fields}


@pytest.mark.parametrize(("settings", "names"), SERVICES, ids=["agent", "session_binding", "demo_api"])
def test_each_settings_class_reads_exactly_its_list_of_names(settings: type[BaseSettings], names: frozenset[str]) -> None:
    read = variables_read_by(settings)
    assert read - names == set(), "settings without their variable in services/common/environment.py"
    assert names - read == set(), "names in services/common/environment.py that no setting reads"


def test_the_shared_settings_are_in_both_services_lists() -> None:
    shared = variables_read_by(ServiceSettings)
    assert shared <= environment.AGENT and shared <= environment.SESSION_BINDING
    assert shared == environment.AGENT & environment.SESSION_BINDING


def test_each_constant_is_its_own_name() -> None:
    constants = {name: value for name, value in vars(environment).items() if name.isupper() and isinstance(value, str)}
    assert constants and all(name == value for name, value in constants.items())
    assert set(constants.values()) == environment.AGENT | environment.SESSION_BINDING | environment.DEMO_API


def test_settings_are_read_from_the_listed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        environment.APP_PROFILE: "local",
        environment.AWS_REGION: "eu-west-1",
        environment.DEMO_ISSUER: "https://issuer.example.com",
        environment.DEMO_CLIENT_IDS: "client-1 client-2",
        environment.DEMO_JWKS_URL: "https://issuer.example.com/keys",
        environment.NOTES_TABLE: "notes-table",
        environment.LOG_LEVEL: "DEBUG",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(DemoApiSettings)
    read = {name: getattr(settings, name.lower()) for name in environment.DEMO_API}
    assert {name: " ".join(sorted(v)) if isinstance(v, frozenset) else str(v) for name, v in read.items()} == values
