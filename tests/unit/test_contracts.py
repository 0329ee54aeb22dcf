"""The wire contract (shared/contracts, shared/topics) and every service's subscriptions."""

from __future__ import annotations

import copy
import importlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared import topics
from shared.contracts import Money, OrderPlaced, Totals

MONEY = TypeAdapter(Money)
SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SERVICES_WITH_HANDLERS = sorted(p.parent.name for p in SERVICES_DIR.glob("*/handlers.py"))

# The `orders.placed` example of the contract: every field, money as strings, RFC 3339 UTC times.
EXAMPLE_ORDER: dict[str, Any] = {
    "event_id": "0b6f1c2e-5d1a-4f43-9a57-3f1d2c9e8b10",
    "occurred_at": "2025-06-01T10:15:30Z",
    "store": "acme-shop",
    "external_order_id": "A-100234",
    "placed_at": "2025-06-01T10:15:00Z",
    "customer": {"id": "cust-42", "name": "Ana Lima", "email": "ana@example.com",
                 "phone": "+5511999990000"},
    "shipping_address": {"name": "Ana Lima", "line1": "100 Main St", "line2": "Apt 4",
                         "city": "Austin", "region": "TX", "postal_code": "73301",
                         "country": "US"},
    "lines": [{"sku": "MUG-BLUE", "quantity": 2, "unit_price": "12.50"},
              {"sku": "TEE-M", "quantity": 1, "unit_price": "20.00"}],
    "currency": "USD",
    "shipping_option": "standard",
    "totals": {"subtotal": "45.00", "discount": "4.50", "shipping_fee": "4.99",
               "grand_total": "45.49"},
    "payment": {"method": "card", "status": "paid"},
    "promo_codes": ["SAVE10"],
    "note": "Leave at the door",
}


def example(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(EXAMPLE_ORDER)
    payload.update(changes)
    return payload


# --- Money ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.50", "12.50"), ("3", "3.00"), ("0.5", "0.50"), ("0", "0.00"), ("-4.10", "-4.10"),
     ("999999999999.99", "999999999999.99")],
)
def test_money_accepts_decimal_strings_with_at_most_two_decimals(raw: str, expected: str) -> None:
    # Given a decimal string
    # When it is parsed as money
    value = MONEY.validate_python(raw)
    # Then it is the exact decimal, with two decimals
    assert value == Decimal(expected)
    assert value.as_tuple().exponent == -2


@pytest.mark.parametrize(("raw", "expected", "wire"), [
    ("12.345", "12.345", "12.345"), ("12.340", "12.34", "12.34"), ("0.001", "0.001", "0.001"),
    ("5000", "5000.00", "5000.00")])
def test_money_keeps_a_third_decimal_for_three_decimal_currencies(raw: str, expected: str,
                                                                   wire: str) -> None:
    # Given an amount of a three-decimal currency (KWD, BHD) or of a zero-decimal one (JPY)
    value = MONEY.validate_python(raw)
    # Then it is exact, and written back as it was meant: two decimals unless a third counts
    assert value == Decimal(expected)
    assert MONEY.dump_python(value) == wire


@pytest.mark.parametrize(
    "raw",
    [12.5, 3, 0, True, None, "1.2345", "abc", "", " 12.50", "12.50 ", "1,50", "1e3", "12.",
     ".50", "+1.00", "NaN", "1234567890123.00"],
)
def test_money_rejects_numbers_and_malformed_strings(raw: object) -> None:
    # Given a float, an int, a bool or a string that is not an amount of at most 3 decimals
    # When it is parsed as money
    # Then it is refused
    with pytest.raises(ValidationError):
        MONEY.validate_python(raw)


def test_money_accepts_a_decimal_and_quantizes_it() -> None:
    # Given a Decimal from our own code
    # When it is used as money
    value = MONEY.validate_python(Decimal("7"))
    # Then it has two decimals
    assert str(value) == "7.00"


@pytest.mark.parametrize(("value", "wire"), [("3", "3.00"), ("12.5", "12.50"), ("0", "0.00")])
def test_money_serialises_as_a_two_decimal_string(value: str, wire: str) -> None:
    # Given an amount
    amount = MONEY.validate_python(value)
    # When it is serialised to Python and to JSON
    # Then it is a string with exactly two decimals, never a number
    assert MONEY.dump_python(amount) == wire
    assert MONEY.dump_json(amount) == f'"{wire}"'.encode()


def test_money_fields_of_a_model_serialise_as_strings() -> None:
    # Given totals parsed from the wire
    totals = Totals(subtotal="45", discount="4.5", shipping_fee="4.99", grand_total="45.49")
    # When they are dumped as JSON
    # Then every amount is a two-decimal string
    assert totals.model_dump_json() == ('{"subtotal":"45.00","discount":"4.50",'
                                        '"shipping_fee":"4.99","grand_total":"45.49",'
                                        '"tax":"0.00","duties":"0.00"}')


# --- OrderPlaced ------------------------------------------------------------------------------

def test_order_placed_parses_the_contract_example() -> None:
    # Given the contract's example payload
    # When it is parsed
    order = OrderPlaced.model_validate(EXAMPLE_ORDER)
    # Then every field is read with its proper type
    assert order.event_id == uuid.UUID("0b6f1c2e-5d1a-4f43-9a57-3f1d2c9e8b10")
    assert order.placed_at == datetime(2025, 6, 1, 10, 15, tzinfo=UTC)
    assert order.key == "acme-shop:A-100234"
    assert order.customer.id == "cust-42"
    assert order.shipping_address.country == "US"
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in order.lines] == [
        ("MUG-BLUE", 2, Decimal("12.50")), ("TEE-M", 1, Decimal("20.00"))]
    assert order.totals.grand_total == Decimal("45.49")
    assert (order.payment.method, order.payment.status) == ("card", "paid")
    assert order.promo_codes == ["SAVE10"]
    assert order.note == "Leave at the door"


def test_order_placed_round_trips_through_json() -> None:
    # Given a parsed example order
    order = OrderPlaced.model_validate(EXAMPLE_ORDER)
    # When it is serialised and parsed again
    again = OrderPlaced.model_validate_json(order.model_dump_json())
    # Then nothing is lost or changed
    assert again == order


def test_order_placed_ignores_unknown_fields_at_every_level() -> None:
    # Given the example with fields a newer contract version might add
    payload = example(loyalty_tier="gold")
    payload["customer"]["segment"] = "vip"
    payload["lines"][0]["gift_wrap"] = True
    payload["totals"]["tip"] = "3.00"
    # When it is parsed
    order = OrderPlaced.model_validate(payload)
    # Then it parses, and the unknown fields are dropped
    assert order == OrderPlaced.model_validate(EXAMPLE_ORDER)
    dumped = order.model_dump()
    assert "loyalty_tier" not in dumped
    assert "segment" not in dumped["customer"]
    assert "tip" not in dumped["totals"]


def test_order_placed_reads_the_v1_1_tax_ioss_and_channel_fields() -> None:
    # Given the example with v1.1's tax, duties, line tax, IOSS number and channel
    payload = example(ioss_number="IM2760000742", channel={"platform": "shopify",
                                                           "order_name": "#1001"})
    payload["totals"] |= {"tax": "3.10", "duties": "1.00"}
    payload["lines"][0]["tax"] = "2.10"
    # When it is parsed
    order = OrderPlaced.model_validate(payload)
    # Then they are read as money and text, and a v1.0 order defaults them
    assert (order.totals.tax, order.totals.duties) == (Decimal("3.10"), Decimal("1.00"))
    assert order.lines[0].tax == Decimal("2.10") and order.lines[1].tax is None
    assert order.ioss_number == "IM2760000742"
    assert order.channel is not None and order.channel.order_name == "#1001"
    old = OrderPlaced.model_validate(EXAMPLE_ORDER)
    assert (old.totals.tax, old.totals.duties, old.channel) == (Decimal("0"), Decimal("0"), None)


def test_order_placed_tolerates_a_v1_0_producers_own_channel_object() -> None:
    # Given a producer that sent a `channel` object of its own before v1.1 defined one
    order = OrderPlaced.model_validate(example(channel={"kind": "mobile"}))
    # Then it still parses, with no platform
    assert order.channel is not None and order.channel.platform is None


def test_order_placed_optional_fields_may_be_left_out() -> None:
    # Given the example without the optional fields
    payload = example()
    for optional in ("promo_codes", "note", "event_id", "occurred_at"):
        del payload[optional]
    # When it is parsed
    order = OrderPlaced.model_validate(payload)
    # Then defaults apply
    assert order.promo_codes == []
    assert order.note is None
    assert isinstance(order.event_id, uuid.UUID)


@pytest.mark.parametrize("field", ["store", "external_order_id"])
@pytest.mark.parametrize("value", ["A.b_c-9", "x", "x" * 64])
def test_order_reference_accepts_1_to_64_safe_characters(field: str, value: str) -> None:
    # Given a store or order id of letters, digits, '.', '_' and '-'
    # When the order is parsed
    order = OrderPlaced.model_validate(example(**{field: value}))
    # Then it is kept as is
    assert getattr(order, field) == value


@pytest.mark.parametrize("field", ["store", "external_order_id"])
@pytest.mark.parametrize("value", ["", "x" * 65, "acme shop", "a/b", "a:b", "ação", 42])
def test_order_reference_rejects_anything_else(field: str, value: object) -> None:
    # Given a store or order id that is empty, too long, has other characters or is not a string
    # When the order is parsed
    # Then it is refused
    with pytest.raises(ValidationError):
        OrderPlaced.model_validate(example(**{field: value}))


@pytest.mark.parametrize(("count", "ok"), [(1, True), (100, True), (0, False), (101, False)])
def test_order_has_between_1_and_100_lines(count: int, ok: bool) -> None:
    # Given an order with `count` lines
    payload = example(lines=[{"sku": f"SKU-{i}", "quantity": 1, "unit_price": "1.00"}
                             for i in range(count)])
    # When it is parsed
    # Then 1 to 100 lines are accepted and anything else refused
    if ok:
        assert len(OrderPlaced.model_validate(payload).lines) == count
    else:
        with pytest.raises(ValidationError):
            OrderPlaced.model_validate(payload)


def test_order_with_a_float_price_is_refused() -> None:
    # Given a line whose price is a JSON number instead of a string
    payload = example()
    payload["lines"][0]["unit_price"] = 12.5
    # When it is parsed
    # Then it is refused (money is never a float)
    with pytest.raises(ValidationError, match="decimal string"):
        OrderPlaced.model_validate(payload)


def test_order_placed_is_frozen() -> None:
    # Given a parsed order
    order = OrderPlaced.model_validate(EXAMPLE_ORDER)
    # When a field is assigned
    # Then it is refused: events are immutable
    with pytest.raises(ValidationError):
        order.store = "other"  # type: ignore[misc]


# --- topics -----------------------------------------------------------------------------------

def test_every_topic_has_a_unique_name() -> None:
    # Given the registry of topics
    names = [t.name for t in topics.ALL]
    # When their names are compared
    # Then no two share a name, and BY_NAME indexes them all
    assert len(names) == len(set(names))
    assert set(topics.BY_NAME) == set(names)
    assert all(topics.BY_NAME[t.name] is t for t in topics.ALL)


@pytest.mark.parametrize("topic", topics.ALL, ids=lambda t: t.name)
def test_every_topic_has_a_dlq_and_a_pydantic_model(topic: topics.Topic) -> None:
    # Given a registered topic
    # When its DLQ name and model are read
    # Then the DLQ is `<name>.dlq` and the model is a pydantic model
    assert topic.dlq == f"{topic.name}.dlq"
    assert str(topic) == topic.name
    assert isinstance(topic.model, type)
    assert issubclass(topic.model, BaseModel)


def test_all_topic_names_lists_every_topic_and_its_dlq_without_clashes() -> None:
    # Given the topics the stack must create
    names = topics.all_topic_names()
    # When they are listed
    # Then each topic and each DLQ appears exactly once
    assert len(names) == 2 * len(topics.ALL) == len(set(names))


def test_services_with_handlers_are_discovered() -> None:
    # Given the services directory
    # When services with a handlers.py are listed
    # Then the pipeline's services are all there (guards the parametrized test below)
    assert {"intake", "inventory", "fulfillment", "logistics", "aftersales"} <= set(
        SERVICES_WITH_HANDLERS)


@pytest.mark.parametrize("service", SERVICES_WITH_HANDLERS)
def test_every_service_subscribes_only_to_registered_topics(service: str) -> None:
    # Given a service's handlers module
    module = importlib.import_module(f"services.{service}.handlers")
    subscriptions = module.handlers.subscriptions
    # When its subscriptions are read
    # Then there is at least one, and each is a registered topic, bound to that very topic
    assert subscriptions
    for name, subscription in subscriptions.items():
        assert name in topics.BY_NAME, f"{service} subscribes to unregistered topic {name}"
        assert subscription.topic is topics.BY_NAME[name]
