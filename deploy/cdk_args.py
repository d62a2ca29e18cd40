"""Reads the same configuration the CDK app gets, from the arguments given to `cdk`.

The deploy helpers are called as `python -m deploy.<helper> $(ARGS)` with the very `ARGS` that
`make deploy` hands to `cdk deploy`. They rebuild the context the CDK CLI would pass to `app.py`
(`~/.cdk.json` < `cdk.context.json` < `cdk.json` < `-c key=value`) and validate it with
`load_config`, so they see exactly the config that is deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_app.config import AppConfig, load_config

PROJECT_DIR = Path(__file__).resolve().parents[1]
BOOTSTRAP_QUALIFIER_KEY = "@aws-cdk/core:bootstrapQualifier"
DEFAULT_BOOTSTRAP_QUALIFIER = "hnb659fds"


@dataclass(frozen=True)
class CdkArgs:
    """What the helpers take from a `cdk` command line: context overrides and `--profile`."""

    context: Mapping[str, str] = field(default_factory=dict)
    aws_profile: str | None = None


def parse_cdk_args(argv: Sequence[str]) -> CdkArgs:
    """`-c k=v`, `--context k=v`, `--context=k=v` and `--profile NAME`; every other argument is cdk's own.

    Like the CDK CLI, a value runs from the first `=` to the end and may be empty (`-c hosted_zone_id=`).
    """
    context: dict[str, str] = {}
    profile: str | None = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        if arg in ("-c", "--context", "--profile") and i + 1 < len(args):
            value = args[i + 1]
            i += 1
        elif arg.startswith(("--context=", "--profile=")):
            arg, value = arg.split("=", 1)
        if value is not None and arg == "--profile":
            profile = value
        elif value is not None and "=" in value:
            key, text = value.split("=", 1)
            context[key] = text
        i += 1
    return CdkArgs(context=context, aws_profile=profile)


def _file_context(path: Path, *, nested: bool) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    values = data.get("context", {}) if nested else data
    return dict(values) if isinstance(values, dict) else {}


def cdk_context(overrides: Mapping[str, str], *, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """All context values, lowest precedence first, as the CDK CLI merges them."""
    context = _file_context(Path.home() / ".cdk.json", nested=True)
    context.update(_file_context(project_dir / "cdk.context.json", nested=False))
    context.update(_file_context(project_dir / "cdk.json", nested=True))
    context.update(overrides)
    return context


def load_cli_config(args: CdkArgs, *, project_dir: Path = PROJECT_DIR) -> AppConfig:
    """The validated config; raises `ConfigError` as synth would."""
    return load_config(cdk_context(args.context, project_dir=project_dir))


def bootstrap_qualifier(context: Mapping[str, Any]) -> str:
    value = context.get(BOOTSTRAP_QUALIFIER_KEY)
    return value.strip() if isinstance(value, str) and value.strip() else DEFAULT_BOOTSTRAP_QUALIFIER
