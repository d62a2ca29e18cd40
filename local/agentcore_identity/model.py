"""botocore's service models for the operations the emulator serves, and a walker that checks a JSON value against a shape.

The walker reports every member a shape lacks, every missing required member, union members that are
not exactly one, enum values, string length and pattern, list and map sizes and JSON types.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

CONTROL = "bedrock-agentcore-control"
DATA = "bedrock-agentcore"
OPERATIONS = {
    "CreateWorkloadIdentity": CONTROL,
    "UpdateWorkloadIdentity": CONTROL,
    "GetWorkloadIdentity": CONTROL,
    "CreateOauth2CredentialProvider": CONTROL,
    "GetOauth2CredentialProvider": CONTROL,
    "GetWorkloadAccessToken": DATA,
    "GetWorkloadAccessTokenForUserId": DATA,
    "GetWorkloadAccessTokenForJWT": DATA,
    "GetResourceOauth2Token": DATA,
    "CompleteResourceTokenAuth": DATA,
}
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float),
    "blob": (str,),
}


@dataclass(frozen=True)
class Problem:
    """One difference from the model: `path` in the JSON body (`a.b[0]`), and what is wrong there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<body>'}: {self.message}"


@functools.cache
def service_model(service: str) -> ServiceModel:
    model: ServiceModel = botocore.session.get_session().get_service_model(service)
    return model


def operation_model(operation: str) -> OperationModel:
    return service_model(OPERATIONS[operation]).operation_model(operation)


def error_codes(operation: str) -> frozenset[str]:
    """The error codes the operation's model lists."""
    return frozenset(shape.name for shape in operation_model(operation).error_shapes)


def error_shape(operation: str, code: str) -> StructureShape | None:
    return next((s for s in operation_model(operation).error_shapes if s.name == code), None)


def problems(value: Any, shape: Shape, path: str = "") -> list[Problem]:
    """Every difference between a JSON `value` and the model's `shape`."""
    return list(_walk(value, shape, path))


def _walk(value: Any, shape: Shape, path: str) -> Iterator[Problem]:
    if isinstance(shape, StructureShape):
        yield from _structure(value, shape, path)
    elif isinstance(shape, ListShape):
        yield from _list(value, shape, path)
    elif isinstance(shape, MapShape):
        yield from _map(value, shape, path)
    elif not isinstance(value, JSON_TYPES.get(shape.type_name, (object,))) or (isinstance(value, bool) and shape.type_name != "boolean"):
        yield Problem(path, f"a {shape.type_name} is expected, not {type(value).__name__}")
    elif isinstance(value, str) and shape.type_name == "string":
        yield from _string(value, shape, path)


def _structure(value: Any, shape: StructureShape, path: str) -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield Problem(path, f"a structure ({shape.name}) is expected")
        return
    prefix = f"{path}." if path else ""
    for name in value.keys() - shape.members.keys():
        yield Problem(prefix + name, f"{shape.name} has no member {name!r}")
    for name in shape.required_members:
        if value.get(name) is None:
            yield Problem(prefix + name, f"required by {shape.name}, missing")
    present = [name for name in shape.members if value.get(name) is not None]
    if shape.metadata.get("union") and len(present) != 1:
        yield Problem(path, f"{shape.name} is a union: exactly one member must be set, not {present}")
    for name in present:
        yield from _walk(value[name], shape.members[name], prefix + name)


def _sized(size: int, shape: Shape, path: str, unit: str) -> Iterator[Problem]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield Problem(path, f"{shape.name}: at least {low} {unit}, not {size}")
    if high is not None and size > high:
        yield Problem(path, f"{shape.name}: at most {high} {unit}, not {size}")


def _list(value: Any, shape: ListShape, path: str) -> Iterator[Problem]:
    if not isinstance(value, list):
        yield Problem(path, f"a list ({shape.name}) is expected")
        return
    yield from _sized(len(value), shape, path, "members")
    for index, item in enumerate(value):
        yield from _walk(item, shape.member, f"{path}[{index}]")


def _map(value: Any, shape: MapShape, path: str) -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield Problem(path, f"a map ({shape.name}) is expected")
        return
    yield from _sized(len(value), shape, path, "entries")
    for key, item in value.items():
        yield from _walk(key, shape.key, f"{path}{{key}}")
        yield from _walk(item, shape.value, f"{path}[{key!r}]")


def _string(value: str, shape: Shape, path: str) -> Iterator[Problem]:
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        yield Problem(path, f"{value!r} is not one of {shape.name}'s values {list(enum)}")
    yield from _sized(len(value), shape, path, "characters")
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        yield Problem(path, f"{shape.name}: does not match the pattern {pattern}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
