"""The contract in the repo: docs/asyncapi.yaml and docs/schemas/ match the code, are well formed,
and accept what a storefront sends; no file cites the team's handbook outside the repo."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema
from pydantic import BaseModel

from shared import topics
from shared.settings import SERVICES, WEB_APPS
from tests.conftest import ROOT
from tools import contract
from tools import storefront as sf

DOCS = ROOT / "docs"
STORE, EXT = "shop-us-1", "100234"

# What a storefront, a PIM, a warehouse or a carrier sends on each inbound topic, built with the
# same helpers the demo and the integration tests publish with.
SAMPLES: dict[str, dict[str, Any]] = {
    topics.CATALOG_PRODUCTS.name: sf.product("MUG-01", attributes=["fragile"]),
    topics.STOCK_ADJUSTMENTS.name: sf.stock("MUG-01", "WH-LA", 40),
    topics.ORDERS_PLACED.name: sf.order(STORE, EXT, [("MUG-01", 2, "12.50")], country="BR",
                                        promo_codes=["WELCOME10"], discount="2.50"),
    topics.ORDERS_CANCEL_REQUESTED.name: sf.order_event(STORE, EXT,
                                                        reason="customer changed their mind"),
    topics.ORDERS_BACKORDER_DECISIONS.name: sf.order_event(
        STORE, EXT, decision="substitute", substitutions={"MUG-01": "MUG-02"}),
    topics.AFTERSALES_REQUESTS.name: sf.order_event(
        STORE, EXT, request_id="RMA-1", kind="exchange", lines=[{"sku": "MUG-01", "quantity": 1}],
        reason="wrong_item", comment=None, exchange_for={"MUG-01": "MUG-02"}),
    topics.RETURNS_RECEIVED.name: sf.order_event(
        STORE, EXT, request_id="RMA-1",
        lines=[{"sku": "MUG-01", "quantity": 1, "condition": "resellable"}]),
    topics.CUSTOMER_FEEDBACK.name: sf.order_event(STORE, EXT, rating=4, comment="好用"),
    topics.CARRIER_TRACKING.name: sf.tracking("UPS", "1Z999AA10123456784", "in_transit"),
    topics.FX_RATES.name: sf.fx_rates("USD", {"CNY": "7.1034", "JPY": "150", "KWD": "0.3071"}),
}
INBOUND = [t for t in topics.ALL if t.producer == contract.OUTSIDE]


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _committed_schema(topic: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / "schemas" / f"{topic}.json").read_text())
    return loaded


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [r for k, v in node.items() for r in ([v] if k == "$ref" else _refs(v))]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCS / contract.ASYNCAPI_PATH).read_text())
    return loaded


def test_generated_contract_files_match_the_code() -> None:
    # Given the topic registry, the pydantic models and the services' handlers as they are now
    # When docs/asyncapi.yaml and docs/schemas/ are generated again, in memory
    stale = contract.stale()
    # Then the committed files are exactly that
    assert stale == [], (
        f"stale generated contract files: {', '.join('docs/' + p for p in stale)}. Regenerate "
        f"with `.venv/bin/{contract.REGENERATE}` and commit docs/asyncapi.yaml and docs/schemas/")


def test_asyncapi_document_has_the_asyncapi_3_shape(asyncapi: dict[str, Any]) -> None:
    # Given the committed AsyncAPI document
    # When its top level is read, and FastStream's AsyncAPI 3.0 model parses it (but for the
    # servers: FastStream 0.7 requires a server `pathname`, which AsyncAPI 3.0 leaves optional)
    parsed = ApplicationSchema.model_validate({k: v for k, v in asyncapi.items() if k != "servers"})
    # Then it is an AsyncAPI 3.0.0 document of the contract's version with the Kafka server
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"] == "Shopkeeper"
    assert asyncapi["info"]["version"] == contract.CONTRACT_VERSION
    assert asyncapi["servers"]["local"]["protocol"] == "kafka"
    assert asyncapi["servers"]["local"]["host"] == "127.0.0.1:9092"
    assert len(parsed.channels) == 2 * len(topics.ALL)
    assert parsed.operations


def test_asyncapi_document_is_valid_against_the_asyncapi_3_0_0_schema(
        asyncapi: dict[str, Any]) -> None:
    # Given the official JSON Schema of AsyncAPI 3.0.0 (tests/unit/data/README.md)
    spec = json.loads((ROOT / "tests" / "unit" / "data" / "asyncapi-3.0.0.schema.json").read_text())
    # When the committed document is validated against it, payload schemas included
    errors = sorted(jsonschema.Draft7Validator(spec).iter_errors(asyncapi),
                    key=lambda e: str(list(e.absolute_path)))
    # Then there is no error
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors] == []


def test_every_reference_in_the_asyncapi_document_resolves(asyncapi: dict[str, Any]) -> None:
    # Given every `$ref` in the document
    refs = _refs(asyncapi)
    # When each is followed
    # Then it lands on an object of the document
    assert len(refs) > 100
    for ref in refs:
        assert isinstance(_resolve(asyncapi, ref), dict), ref


@pytest.mark.parametrize("topic", topics.ALL, ids=str)
def test_every_topic_is_a_channel_with_its_key_message_and_dead_letters(
        asyncapi: dict[str, Any], topic: topics.Topic) -> None:
    # Given a registered topic
    channel = asyncapi["channels"][contract.ident(topic.name)]
    dlq = asyncapi["channels"][contract.ident(topic.dlq)]
    # When its channel's message is followed to its payload
    [ref] = [m["$ref"] for m in channel["messages"].values()]
    message = _resolve(asyncapi, ref)
    payload = _resolve(asyncapi, message["payload"]["$ref"])
    # Then the channel is at the topic's address, the Kafka key is described, and the payload has
    # the model's fields
    assert channel["address"] == topic.name and dlq["address"] == topic.dlq
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    assert message["contentType"] == "application/json"
    assert set(payload["properties"]) == {
        f.alias or name for name, f in topic.model.model_fields.items()}


def _operations(asyncapi: dict[str, Any], topic: str, action: str) -> set[str]:
    channel_ref = f"#/channels/{contract.ident(topic)}"
    return {op["tags"][0]["name"] for op in asyncapi["operations"].values()
            if op["action"] == action and op["channel"]["$ref"] == channel_ref}


def test_operations_name_their_channel_and_only_its_messages(asyncapi: dict[str, Any]) -> None:
    # Given every operation
    for op_id, op in asyncapi["operations"].items():
        # When its channel and messages are followed
        channel_ref = op["channel"]["$ref"]
        _resolve(asyncapi, channel_ref)
        # Then it sends or receives, and only messages of its own channel
        assert op["action"] in ("send", "receive"), op_id
        assert op["messages"] and all(m["$ref"].startswith(channel_ref + "/messages/")
                                      for m in op["messages"]), op_id


@pytest.mark.parametrize("service", SERVICES)
def test_every_subscription_of_a_service_is_a_receive_operation(
        asyncapi: dict[str, Any], service: str) -> None:
    # Given a service's handlers registry
    module = importlib.import_module(f"services.{service}.handlers")
    # When the document's receive operations are read per topic
    # Then the service receives exactly the topics it subscribes to, and may dead-letter them
    received = {t.name for t in topics.ALL
                if service in _operations(asyncapi, t.name, "receive")}
    assert received == set(module.handlers.subscriptions)
    for name in module.handlers.subscriptions:
        assert service in _operations(asyncapi, topics.BY_NAME[name].dlq, "send")


@pytest.mark.parametrize("topic", topics.ALL, ids=str)
def test_every_topic_has_its_publishers(asyncapi: dict[str, Any], topic: topics.Topic) -> None:
    # Given a registered topic
    # When the document's send operations on its channel are read
    senders = _operations(asyncapi, topic.name, "send")
    # Then the outside world sends the inbound topics, the owning service the internal ones, and
    # the public outbound topics are sent by services and read by the outside world
    if topic.producer == contract.OUTSIDE:
        assert contract.OUTSIDE in senders
        assert senders - {contract.OUTSIDE} <= contract.edge_senders(topic.name)
    elif topic.public:
        assert senders and senders <= set(SERVICES) | set(WEB_APPS)
        assert contract.OUTSIDE in _operations(asyncapi, topic.name, "receive")
    elif topic.producer == "shopkeeper":  # internal, sent by several services (setup.changed)
        assert senders and senders <= set(SERVICES)
    else:
        assert senders == {topic.producer}


def test_publishers_found_in_the_source_agree_with_the_registry() -> None:
    # Given each service's source, read for the topics it sends
    scanned = {s: contract.sent_by_source(p.read_text() for p in
                                          sorted((ROOT / "services" / s).glob("*.py")))
               for s in SERVICES}
    for t in topics.ALL:
        senders = {s for s in SERVICES if t.name in scanned[s]}
        # Then only the edge (channels for platforms, intake for rates) sends an inbound topic,
        # an internal topic is sent by its registered producer alone, and every service on the
        # order's path reports statuses
        if t.producer == contract.OUTSIDE:
            assert senders <= contract.edge_senders(t.name), t.name
        elif t.producer in SERVICES:
            assert senders == {t.producer}, t.name
    assert {"intake", "inventory", "fulfillment", "logistics", "aftersales"} <= {
        s for s in SERVICES if topics.ORDERS_STATUS.name in scanned[s]}


def test_the_source_scan_sees_publish_calls_and_status_helpers_but_not_subscriptions() -> None:
    # Given source that subscribes to one topic, publishes another and reports a status
    source = (
        "@handlers.on(topics.ORDERS_PLACED)\n"
        "async def f(ctx, e):\n"
        "    await ctx.publish(topics.INTAKE_ORDER_ACCEPTED, e.key, e)\n"
        "    await ctx.status(order_id='1', store='s', external_order_id='x', status='accepted')\n")
    # When it is scanned
    sent = contract.sent_by_source([source])
    # Then only the published topic and orders.status count as sent
    assert sent == {topics.INTAKE_ORDER_ACCEPTED.name, topics.ORDERS_STATUS.name}


@pytest.mark.parametrize("topic", topics.ALL, ids=str)
def test_every_topic_schema_is_a_valid_draft_2020_12_schema(topic: topics.Topic) -> None:
    # Given the committed JSON Schema of a topic
    schema = _committed_schema(topic.name)
    # When it is checked against the Draft 2020-12 metaschema
    jsonschema.Draft202012Validator.check_schema(schema)
    # Then it declares that draft and describes an object with the model's required fields
    assert schema["$schema"] == contract.DRAFT_2020_12
    assert schema["type"] == "object"
    assert topic.name in schema["description"]


def test_every_asyncapi_payload_schema_is_a_valid_json_schema(asyncapi: dict[str, Any]) -> None:
    # Given the payload schemas of the AsyncAPI document (AsyncAPI's default schema format is a
    # superset of JSON Schema Draft 07)
    schemas = asyncapi["components"]["schemas"]
    # When each is checked against the Draft 07 metaschema
    # Then none is malformed
    assert schemas
    for name, schema in schemas.items():
        try:
            jsonschema.Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"components.schemas.{name}: {exc.message}")


@pytest.mark.parametrize("topic", INBOUND, ids=str)
def test_storefront_samples_validate_against_the_inbound_schemas(topic: topics.Topic) -> None:
    # Given what the storefront client sends on an inbound topic
    sample = json.loads(json.dumps(SAMPLES[topic.name]))
    # When it is validated against the published schema and parsed by Shopkeeper's model
    errors = [e.message for e in _validator(_committed_schema(topic.name)).iter_errors(sample)]
    parsed = topic.model.model_validate(sample)
    # Then both accept it
    assert errors == []
    assert isinstance(parsed, BaseModel)


def test_inbound_schemas_cover_every_inbound_topic() -> None:
    # Given the inbound topics of the registry
    # When their samples are listed
    # Then there is one for each (guards the parametrized test above)
    assert set(SAMPLES) == {t.name for t in INBOUND}


def test_money_as_a_json_number_breaks_the_schema_as_it_breaks_the_model() -> None:
    # Given an order whose unit price is a JSON number, not a decimal string
    sample = json.loads(json.dumps(SAMPLES[topics.ORDERS_PLACED.name]))
    sample["lines"][0]["unit_price"] = 12.5
    # When the schema and the model judge it
    errors = list(_validator(_committed_schema(topics.ORDERS_PLACED.name)).iter_errors(sample))
    # Then both refuse it (the order would be rejected as malformed)
    assert [list(e.absolute_path) for e in errors] == [["lines", 0, "unit_price"]]
    with pytest.raises(ValueError, match="money must be a decimal string"):
        topics.ORDERS_PLACED.model.model_validate(sample)


def test_outbound_schema_requires_what_shopkeeper_always_sends() -> None:
    # Given the schema of orders.status (what storefronts read)
    schema = _committed_schema(topics.ORDERS_STATUS.name)
    # When its required fields are read
    # Then every field of the contract is there, defaults included
    assert {"event_id", "occurred_at", "order_id", "store", "external_order_id", "status",
            "reasons", "details"} <= set(schema["required"])


HANDBOOK = re.compile(r"\.\./shared|(CONTRACT|DESIGN|STYLE)\.md")


def test_no_tracked_file_cites_the_handbook_outside_the_repo() -> None:
    # Given every tracked text file
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    offenders = []
    for name in files:
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        # When it is searched for the handbook's file names
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1)
                      if HANDBOOK.search(line)]
    # Then none cites them: users of the project have docs/contract.md and docs/design.md
    assert offenders == [], "cite docs/contract.md or docs/design.md instead"
