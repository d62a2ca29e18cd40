"""The Python services' one Dockerfile (`services/Dockerfile`, build context `services/`) as CDK image assets:
a service's `fargate` or `lambda` stage, chosen by the build target, the service by the `SERVICE` build argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import aws_ecr_assets as ecr_assets, aws_ecs as ecs, aws_lambda as lambda_

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
DOCKERFILE = "Dockerfile"
FARGATE_STAGE = "fargate"
LAMBDA_STAGE = "lambda"
# Never part of an image: caches and test leftovers would also change the asset hash between synths.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache", "**/.ruff_cache", "**/tests", "**/*.egg-info"]


def build_args(service_dir_name: str) -> dict[str, str]:
    """The Dockerfile's build arguments for one service (its directory under `services/`)."""
    for required in (SERVICES_DIR / DOCKERFILE, SERVICES_DIR / service_dir_name / "requirements.txt"):
        if not required.is_file():
            raise FileNotFoundError(f"{required} is missing")
    return {"SERVICE": service_dir_name}


def _asset_options(service_dir_name: str, stage: str) -> dict[str, Any]:
    """Where and how a service's stage is built. Built for the task's or function's architecture wherever
    `cdk deploy` runs (an arm64 laptop included)."""
    return {
        "file": DOCKERFILE,
        "target": stage,
        "build_args": build_args(service_dir_name),
        "exclude": ASSET_EXCLUDES,
        "platform": ecr_assets.Platform.LINUX_AMD64,
    }


def fargate_image(service_dir_name: str) -> ecs.ContainerImage:
    """The service's uvicorn image for an ECS task."""
    return ecs.ContainerImage.from_asset(str(SERVICES_DIR), **_asset_options(service_dir_name, FARGATE_STAGE))


def lambda_image(service_dir_name: str) -> lambda_.DockerImageCode:
    """The service's image for AWS Lambda; its handler is the image's own CMD (no ImageConfig in the template)."""
    return lambda_.DockerImageCode.from_image_asset(str(SERVICES_DIR), **_asset_options(service_dir_name, LAMBDA_STAGE))
