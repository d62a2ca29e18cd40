"""The local DynamoDB tables (`local/dynamodb.py`) have the shapes the CDK deploys.

`make demo` and the tests create their tables from `NOTES_TABLE`, `BINDING_TABLE` and `CONNECTIONS_TABLE`; a key
renamed in a construct but not there would let the local stack pass with a table AWS never has.
"""

from __future__ import annotations

from typing import Any

from local.dynamodb import BINDING_TABLE, CONNECTIONS_TABLE, NOTES_TABLE, TableShape
from tests.stacks.conftest import Synth, demo, resources

__all__ = ["demo"]  # the synthesized default app, a fixture


def _tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: table["Properties"] for name, table in resources(template, "AWS::DynamoDB::Table").items()}


def _assert_shape(properties: dict[str, Any], shape: TableShape) -> None:
    assert properties["KeySchema"] == shape.key_schema()
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        shape.attribute_definitions(), key=lambda a: a["AttributeName"]
    )
    assert properties["BillingMode"] == shape.billing_mode
    if shape.ttl_attribute is None:
        assert "TimeToLiveSpecification" not in properties
    else:
        assert properties["TimeToLiveSpecification"] == {"AttributeName": shape.ttl_attribute, "Enabled": True}


def test_the_local_notes_table_is_the_demo_apis(demo: Synth) -> None:
    [properties] = [p for name, p in _tables(demo.raw("services")).items() if name.startswith("DemoApiNotes")]
    _assert_shape(properties, NOTES_TABLE)


def test_the_local_binding_table_is_the_ledgers(demo: Synth) -> None:
    partition_key = [{"AttributeName": BINDING_TABLE.partition_key[0], "KeyType": "HASH"}]
    [properties] = [p for p in _tables(demo.raw("services")).values() if p["KeySchema"] == partition_key]
    _assert_shape(properties, BINDING_TABLE)


def test_the_local_connections_table_is_the_registrys(demo: Synth) -> None:
    [properties] = [p for name, p in _tables(demo.raw("services")).items() if name.startswith("ConnectionsTable")]
    _assert_shape(properties, CONNECTIONS_TABLE)
