"""Writes the machine-readable contract from the code: `python -m tools.contract`.

- `docs/asyncapi.yaml`: AsyncAPI 3.0. Every topic of `shared/topics.py` is a channel (with its
  dead-letter topic), with its Kafka key and its message; an operation for every publisher and
  every subscriber. Subscribers are read from each service's handlers registry
  (`services/<name>/handlers.py`, `handlers.subscriptions`). Publishers: the outside world for the
  inbound topics; for the others, the services whose code sends the topic (`uow.publish(topics.X,
  …)`, and the unit of work's helpers: `uow.status` for `orders.status`, `uow.cancelled`,
  `uow.refund`, `uow.charge`, `confirm_cancellation`), found by reading their source, and the
  topic's registered producer.
- `docs/schemas/<topic>.json`: a JSON Schema (Draft 2020-12) per topic from its pydantic model:
  validation mode for what Shopkeeper accepts from outside, serialization mode for what it sends.

Output is deterministic (sorted keys), so `tests/unit/test_contract_docs.py` can regenerate it in
memory and fail when the committed files are stale. `--check` does the same from the command line.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic.json_schema import models_json_schema

from shared import topics
from shared.settings import DEFAULT_PORTS, SERVICES, WEB_APPS
from shared.topics import Topic

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ASYNCAPI_PATH = "asyncapi.yaml"
SCHEMAS_DIR = "schemas"
CONTRACT_VERSION = "1.1.0"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
OUTSIDE = "outside"
# Services that publish inbound topics on behalf of outside systems: channels for every platform,
# intake for the exchange rates an operator enters (POST /fx/rates).
EDGE_SERVICES = ("channels",)
EDGE_TOPICS: dict[str, tuple[str, ...]] = {"fx.rates": ("intake",)}


def edge_senders(topic: str) -> set[str]:
    """The services that may publish the inbound `topic` for outside systems."""
    return set(EDGE_SERVICES) | set(EDGE_TOPICS.get(topic, ()))
REGENERATE = "python -m tools.contract"

Mode = Literal["validation", "serialization"]

KEY_DESCRIPTIONS = {
    "order key": "The order key: `{store}:{external_order_id}`.",
    "sku": "The product's SKU.",
    "tracking_number": "The parcel's tracking number.",
    "carrier": "The carrier's code.",
    "'coverage'": "Always the string `coverage` (one record, the latest wins).",
}

# Who is "outside" for each inbound topic and who reads each public outbound topic; words only,
# for people reading the document.
OUTSIDE_ROLES = {
    topics.CATALOG_PRODUCTS.name: "a store or a PIM",
    topics.STOCK_ADJUSTMENTS.name: "a warehouse system (goods in, cycle counts, damage)",
    topics.ORDERS_PLACED.name: "a storefront or a marketplace",
    topics.ORDERS_CANCEL_REQUESTED.name: "a storefront (the customer cancels)",
    topics.ORDERS_BACKORDER_DECISIONS.name: "a storefront (the customer's answer to a backorder)",
    topics.AFTERSALES_REQUESTS.name: "a storefront or a helpdesk",
    topics.RETURNS_RECEIVED.name: "the warehouse (a returned parcel arrived)",
    topics.CUSTOMER_FEEDBACK.name: "a storefront or a review platform",
    topics.CARRIER_TRACKING.name: "a carrier integration",
    topics.ORDERS_STATUS.name: "storefronts (to show and tell the customer)",
    topics.PAYMENTS_REFUNDS.name: "the payment system",
}

DLQ_HEADERS = {
    "x-error": "What was wrong, for people.",
    "x-error-type": "The kind of error (e.g. `ValidationError`, `PoisonMessage`).",
    "x-original-topic": "The topic the value was read from.",
    "x-original-partition": "Its partition.",
    "x-original-offset": "Its offset.",
    "x-service": "The service that gave up on it.",
    "x-traceback": "For a failure of Shopkeeper's own code: the traceback (its last 4000 characters).",
    "x-truncated": "v1.1: `true` when the value is only a prefix of the original (it did not fit).",
    "x-original-size": "v1.1: with `x-truncated`, the original value's size in bytes.",
    "x-replayed-from": "Set by `shopkeeper dlq replay` on a message put back on its topic.",
}


def mode_of(topic: Topic) -> Mode:
    """What Shopkeeper accepts from outside is described as validated; what it sends, as sent."""
    return "validation" if topic.producer == OUTSIDE else "serialization"


# --- who publishes and who subscribes --------------------------------------------------------

def subscribers() -> dict[str, list[str]]:
    """topic name -> the services that consume it, from each service's handlers registry."""
    found: dict[str, set[str]] = {t.name: set() for t in topics.ALL}
    for service in SERVICES:
        try:
            module = importlib.import_module(f"services.{service}.handlers")
        except ModuleNotFoundError:  # a service without subscriptions (none today)
            continue
        for name in module.handlers.subscriptions:
            found[name].add(service)
    return {name: sorted(s) for name, s in found.items()}


def _topic_constant(node: ast.expr) -> str | None:
    """`topics.NAME` -> NAME."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "topics":
        return node.attr
    return None


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# The unit of work's helpers (shared/uow.py) and shared.messaging's, and the topics they send
# whoever calls them.
HELPERS_SEND: dict[str, tuple[str, ...]] = {
    "confirm_cancellation": (topics.ORDERS_STATUS.name, topics.PAYMENTS_REFUNDS.name),
    "cancelled": (topics.ORDERS_STATUS.name, topics.PAYMENTS_REFUNDS.name),
    "refund": (topics.PAYMENTS_REFUNDS.name,),
    "charge": (topics.PAYMENTS_CHARGES.name,),
}


def sent_by_source(sources: Iterable[str]) -> set[str]:
    """The topics a service's source sends: a call with `topics.X` as an argument (publish,
    confirm_cancellation, …; not `handlers.on`, which subscribes), `orders.status` for a call of
    `uow.status(…, status=…)`, and the helpers' topics (`HELPERS_SEND`)."""
    sent: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = _called_name(node)
            if (name == "router" and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "setup"):
                # an owner of shop setup: its /setup API publishes every change (shared/setup.py)
                sent.add(topics.SETUP_CHANGED.name)
            if name == "status" and any(k.arg == "status" for k in node.keywords):
                sent.add(topics.ORDERS_STATUS.name)
            if node.keywords or name not in ("cancelled", "refund", "charge"):
                # (`future.cancelled()` is not the unit of work's)
                sent.update(HELPERS_SEND.get(name or "", ()))
            if name == "on":
                continue
            for arg in node.args:
                constant = _topic_constant(arg)
                topic = getattr(topics, constant, None) if constant else None
                if isinstance(topic, Topic):
                    sent.add(topic.name)
    return sent


@cache
def publishers() -> dict[str, list[str]]:
    """topic name -> who publishes it: `outside`, or services."""
    found: dict[str, set[str]] = {t.name: set() for t in topics.ALL}
    for service in (*SERVICES, *WEB_APPS):
        folder = ROOT / "services" / service
        sources = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py"))]
        for name in sent_by_source(sources):
            found[name].add(service)
    for t in topics.ALL:
        if t.producer == OUTSIDE:
            # Outside systems publish it, directly or through the channels service (which turns
            # platforms' webhooks and marketplace polls into the same inbound events).
            found[t.name] = {OUTSIDE} | (found[t.name] & edge_senders(t.name))
        elif t.producer in (*SERVICES, *WEB_APPS):
            found[t.name].add(t.producer)
    return {name: sorted(s) for name, s in found.items()}


# --- JSON Schemas ----------------------------------------------------------------------------

def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def model_summary(topic: Topic) -> str:
    """The model's docstring, less a leading "`topic`, key: …." that topic_summary says."""
    text = _first_paragraph(topic.model.__doc__)
    if text.startswith(f"`{topic.name}`, key:"):
        text = text.partition(". ")[2]
    return text


KEY_NAMES = {"order key": "the order key `{store}:{external_order_id}`",
             "'coverage'": "the string `coverage`"}


def topic_summary(topic: Topic) -> str:
    side = ("inbound, public contract (docs/contract.md)" if topic.producer == OUTSIDE
            else "outbound, public contract (docs/contract.md)" if topic.public
            else "internal (docs/design.md)")
    return f"`{topic.name}`: {side}; key: {KEY_NAMES.get(topic.key, topic.key)}."


def topic_schema(topic: Topic) -> dict[str, Any]:
    """The standalone JSON Schema of one topic's value."""
    schema = topic.model.model_json_schema(mode=mode_of(topic))
    described = model_summary(topic)
    schema["description"] = topic_summary(topic) + (f" {described}" if described else "")
    return {"$schema": DRAFT_2020_12, **schema}


def schema_files() -> dict[str, str]:
    """docs/schemas/<topic>.json for every topic, as text."""
    return {f"{SCHEMAS_DIR}/{t.name}.json": _json(topic_schema(t)) for t in topics.ALL}


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- AsyncAPI --------------------------------------------------------------------------------

def _component_schemas() -> tuple[dict[tuple[type[Any], Mode], str], dict[str, Any]]:
    """One schema per model (and mode), cross-referenced in `#/components/schemas`."""
    wanted = sorted({(t.model, mode_of(t)) for t in topics.ALL},
                    key=lambda pair: (pair[0].__name__, pair[1]))
    refs, defs = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    return {k: v["$ref"] for k, v in refs.items()}, defs.get("$defs", {})


def ident(name: str) -> str:
    """An AsyncAPI id for a topic (channel, message and operation ids allow no dots)."""
    return name.replace(".", "_")


def _put(mapping: dict[str, Any], key: str, value: Any) -> None:
    if key in mapping:
        raise ValueError(f"two AsyncAPI objects would share the id {key!r}; rename a topic")
    mapping[key] = value


def _operation(action: str, who: str, topic: str, channel_ref: str, message_ref: str,
               summary: str) -> tuple[str, dict[str, Any]]:
    return ident(f"{who}_{action}_{topic}"), {
        "action": action, "channel": {"$ref": channel_ref}, "messages": [{"$ref": message_ref}],
        "summary": summary, "tags": [{"name": who}],
    }


def asyncapi() -> dict[str, Any]:
    refs, schemas = _component_schemas()
    subs, pubs = subscribers(), publishers()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for t in topics.ALL:
        message_id = ident(t.name)
        channel_ref = f"#/channels/{ident(t.name)}"
        message_ref = f"{channel_ref}/messages/{message_id}"
        _put(messages, message_id, {
            "name": t.model.__name__,
            "title": t.model.__name__,
            "summary": model_summary(t) or topic_summary(t),
            "contentType": "application/json",
            "payload": {"$ref": refs[(t.model, mode_of(t))]},
            "bindings": {"kafka": {
                "key": {"type": "string", "description": KEY_DESCRIPTIONS.get(t.key, t.key)},
                "bindingVersion": KAFKA_BINDING_VERSION}},
        })
        description = topic_summary(t)
        if t.name in OUTSIDE_ROLES:
            description += f" Outside: {OUTSIDE_ROLES[t.name]}."
        _put(channels, ident(t.name), {
            "address": t.name, "title": t.name, "description": description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {"kafka": {"topic": t.name, "bindingVersion": KAFKA_BINDING_VERSION}},
            "tags": [{"name": "public" if t.public else "internal"}],
        })
        for who in pubs[t.name]:
            op_id, op = _operation("send", who, t.name, channel_ref, message_ref,
                                   f"{OUTSIDE_ROLES.get(t.name, 'outside') if who == OUTSIDE else who}"
                                   f" publishes `{t.name}`.")
            _put(operations, op_id, op)
        readers = list(subs[t.name])
        if t.public and t.producer != OUTSIDE:
            readers.append(OUTSIDE)
        for who in readers:
            reader = OUTSIDE_ROLES.get(t.name, "outside") if who == OUTSIDE else who
            op_id, op = _operation("receive", who, t.name, channel_ref, message_ref,
                                   f"{reader} consumes `{t.name}`.")
            _put(operations, op_id, op)
        # The dead letters of the topic: written by the services that consume it.
        dlq = t.dlq
        dlq_ref = f"#/channels/{ident(dlq)}"
        dlq_message_ref = f"{dlq_ref}/messages/DeadLetter"
        _put(channels, ident(dlq), {
            "address": dlq, "title": dlq,
            "description": f"Dead letters of `{t.name}`: values that could not be handled, as they"
                           " were read (a prefix when too large), with headers saying why.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": {"kafka": {"topic": dlq, "bindingVersion": KAFKA_BINDING_VERSION}},
            "tags": [{"name": "dlq"}],
        })
        for who in subs[t.name]:
            op_id, op = _operation("send", who, dlq, dlq_ref, dlq_message_ref,
                                   f"{who} sends what it cannot handle on `{t.name}`.")
            _put(operations, op_id, op)
        op_id, op = _operation("receive", "operator", dlq, dlq_ref, dlq_message_ref,
                               f"`shopkeeper dlq list|replay {t.name}` reads them.")
        _put(operations, op_id, op)
    messages["DeadLetter"] = {
        "name": "DeadLetter", "title": "DeadLetter",
        "summary": "A value that could not be handled, with why in its headers.",
        "contentType": "application/octet-stream",
        "payload": {"description": "The original value's bytes (or their prefix with"
                                   " `x-truncated`)."},
        "headers": {"type": "object", "required": [
            "x-error", "x-error-type", "x-original-topic", "x-original-partition",
            "x-original-offset"],
            "properties": {h: {"type": "string", "description": d}
                           for h, d in DLQ_HEADERS.items()}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Shopkeeper",
            "version": CONTRACT_VERSION,
            "description": "Kafka topics of Shopkeeper: the public contract (docs/contract.md) and the"
                           " internal topics between its services (docs/design.md; they may change"
                           f" in any release). Generated by `{REGENERATE}`; do not edit.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {"local": {
            "host": "127.0.0.1:9092", "protocol": "kafka",
            "description": "The local stack (`make up`); services' operators' HTTP on ports "
                           + ", ".join(f"{s} {p}" for s, p in sorted(DEFAULT_PORTS.items(),
                                                                     key=lambda kv: kv[1]))
                           + "."}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def asyncapi_text() -> str:
    header = f"# Generated by `{REGENERATE}` from shared/topics.py, shared/contracts/ and each\n" \
             "# service's handlers.py. Do not edit: regenerate.\n"
    return header + yaml.safe_dump(asyncapi(), sort_keys=True, allow_unicode=True, width=100)


def generated() -> dict[str, str]:
    """Every generated file (path relative to docs/) with its content."""
    return {ASYNCAPI_PATH: asyncapi_text(), **schema_files()}


def stale(docs: Path = DOCS) -> list[str]:
    """Generated files that differ from the committed ones, are missing, or are left over."""
    want = generated()
    out = [name for name, text in want.items()
           if not (docs / name).is_file() or (docs / name).read_text(encoding="utf-8") != text]
    extra = [f"{SCHEMAS_DIR}/{p.name}" for p in sorted((docs / SCHEMAS_DIR).glob("*.json"))
             if f"{SCHEMAS_DIR}/{p.name}" not in want]
    return sorted(out + extra)


def write(docs: Path = DOCS) -> list[str]:
    want = generated()
    (docs / SCHEMAS_DIR).mkdir(parents=True, exist_ok=True)
    for old in sorted((docs / SCHEMAS_DIR).glob("*.json")):
        if f"{SCHEMAS_DIR}/{old.name}" not in want:
            old.unlink()
    for name, text in want.items():
        (docs / name).write_text(text, encoding="utf-8")
    return sorted(want)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.contract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    if args.check:
        out = stale()
        for p in out:
            print(f"stale: docs/{p}", file=sys.stderr)
        if out:
            print(f"regenerate with `{REGENERATE}` and commit the result", file=sys.stderr)
        return 1 if out else 0
    written = write()
    print(f"wrote docs/{ASYNCAPI_PATH} and {len(written) - 1} schemas in docs/{SCHEMAS_DIR}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
