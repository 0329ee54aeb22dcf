"""The rules that keep one input or one fault from halting a service (docs/RELIABILITY.md
"What no input can do"): sizes, text Postgres cannot store, infrastructure faults versus bad
data, clocks ahead, derived ids, dead letters that fit, metrics that count what committed,
credentials. No I/O: the same rules on the real stack are in tests/integration/test_hardening.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)

from shared import outbox, topics
from shared.contracts import ProductUpserted, order_id_for
from shared.messaging import (
    clamp_future,
    fit_dead_letter,
    is_transient,
    storable,
)
from shared.settings import Settings, check_credentials
from shared.uow import QUOTE_CHARS, cut


# --- text Postgres cannot store ----------------------------------------------------------------
def test_nul_is_removed_from_every_string_keys_included() -> None:
    value = json.dumps({"customer": {"name": "Ana\u0000 Lima"}, "k\u0000": ["a\u0000b"]}).encode()
    cleaned = json.loads(storable(value))
    assert cleaned == {"customer": {"name": "Ana Lima"}, "k": ["ab"]}


def test_a_lone_surrogate_becomes_the_replacement_character_and_a_pair_is_kept() -> None:
    value = b'{"a": "x\\ud800y", "b": "\\ud83d\\ude00"}'
    cleaned = json.loads(storable(value))
    assert cleaned == {"a": "x\ufffdy", "b": "\U0001F600"}
    storable(value).decode("utf-8")  # encodable: what asyncpg will do with it


def test_values_without_such_escapes_are_returned_untouched() -> None:
    value = b'{"name": "\\u00e9t\\u00e9 \xe5\x8c\x97\xe4\xba\xac", "n": 1.50}'
    assert storable(value) is value


def test_not_json_is_left_for_the_parser_to_refuse() -> None:
    assert storable(b"\\u0000 not json") == b"\\u0000 not json"


def test_every_inbound_topic_has_a_documented_size_limit() -> None:
    inbound = {t.name: t.max_bytes for t in topics.ALL if t.producer == "outside"}
    assert inbound["orders.placed"] == 256 * 1024
    assert max(inbound.values()) == 256 * 1024 and min(inbound.values()) >= 16 * 1024


# --- reasons quote at most QUOTE_CHARS ---------------------------------------------------------
def test_quoted_text_is_cut_with_an_ellipsis() -> None:
    code = "優惠" * 300_000
    quoted = cut(f"promo code {code!r} is unknown")
    assert len(quoted) == QUOTE_CHARS and quoted.endswith("\u2026")
    assert cut("short") == "short"


# --- infrastructure faults are transient; data errors are not --------------------------------
@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.DiskFullError("could not extend file"),                  # 53100
    asyncpg.exceptions.OutOfMemoryError("out of memory"),                       # 53200
    asyncpg.exceptions.TooManyConnectionsError("too many clients"),             # 53300
    asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"),    # 25006
    asyncpg.exceptions.AdminShutdownError("terminating connection"),            # 57P01
    asyncpg.exceptions.CrashShutdownError("crash"),                             # 57P02
    asyncpg.exceptions.CannotConnectNowError("starting up"),                    # 57P03
    asyncpg.exceptions.QueryCanceledError("canceling statement"),               # 57014
    asyncpg.exceptions.SerializationError("could not serialize"),               # 40001
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),                       # 40P01
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),    # 08003
    asyncpg.exceptions.PostgresIOError("could not write"),                      # 58030
    asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError(),
    KafkaConnectionError(),
    KafkaTimeoutError(),
])
def test_infrastructure_faults_are_retried_and_never_dead_lettered(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.UniqueViolationError("duplicate key"),                   # 23505
    asyncpg.exceptions.CheckViolationError("violates check"),                   # 23514
    asyncpg.exceptions.UntranslatableCharacterError("\\u0000"),                 # 22P05
    asyncpg.exceptions.NumericValueOutOfRangeError("out of range"),             # 22003
    asyncpg.exceptions.UndefinedColumnError("no column"),                       # a bug: 42703
    asyncpg.exceptions.InterfaceError("another operation is in progress"),      # a bug
    MessageSizeTooLargeError(), RecordTooLargeError(),
    KeyError("sku"), ValueError("bad"),
])
def test_data_errors_and_bugs_count_toward_the_dlq(exc: BaseException) -> None:
    assert not is_transient(exc)


# --- clocks ahead -------------------------------------------------------------------------------
def _product(occurred_at: str) -> ProductUpserted:
    return ProductUpserted.model_validate({
        "occurred_at": occurred_at, "sku": "S", "name": "n", "category": "c", "price": "1.00",
        "currency": "USD", "weight_g": 1, "dims_mm": {"l": 1, "w": 1, "h": 1}})


def test_an_event_dated_beyond_the_skew_is_clamped_to_the_time_received() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    future = _product("2099-01-01T00:00:00Z")
    clamped = clamp_future(future, now, timedelta(minutes=5))
    assert clamped.occurred_at == now and clamped.event_id == future.event_id


def test_an_event_within_the_skew_keeps_its_time() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    near = _product("2026-12-06T12:04:00Z")
    assert clamp_future(near, now, timedelta(minutes=5)) is near


def test_a_timestamp_without_an_offset_is_taken_as_utc() -> None:
    assert _product("2026-12-06T12:00:00").occurred_at == datetime(2026, 12, 6, 12, tzinfo=UTC)


# --- ids derived from their cause --------------------------------------------------------------
def test_an_orders_id_is_a_function_of_its_key() -> None:
    assert order_id_for("shop-us-1", "1001") == order_id_for("shop-us-1", "1001")
    assert order_id_for("shop-us-1", "1001") != order_id_for("shop-us-1", "1002")
    assert order_id_for("shop-us-1", "1001").version == 5


# --- dead letters that fit ---------------------------------------------------------------------
HEADERS = [("x-error", b"malformed: not JSON"), ("x-original-topic", b"orders.placed")]


def test_a_dead_letter_that_fits_is_sent_whole() -> None:
    value, headers = fit_dead_letter("k", b"x" * 1000, HEADERS)
    assert value == b"x" * 1000 and headers == HEADERS


def test_a_dead_letter_too_large_carries_a_prefix_and_says_so() -> None:
    original = b"y" * 1_048_400
    value, headers = fit_dead_letter("shop:1", original, HEADERS)
    h = dict(headers)
    assert original.startswith(value) and len(value) < len(original)
    assert h["x-truncated"] == b"true" and h["x-original-size"] == b"1048400"
    total = len(value) + sum(len(k) + len(v) for k, v in headers) + len("shop:1")
    assert total <= outbox.MAX_RECORD_BYTES


def test_a_refused_dead_letter_is_halved_and_keeps_its_original_size() -> None:
    value, headers = fit_dead_letter(None, b"z" * 2_000_000, HEADERS)
    value, headers = fit_dead_letter(None, value, headers, len(value) // 2)
    assert dict(headers)["x-original-size"] == b"2000000"
    assert len(value) < 500_000


def test_huge_foreign_headers_are_dropped_but_ours_stay() -> None:
    headers = [("trace", b"t" * 900_000), *HEADERS]
    value, out = fit_dead_letter(None, b"v" * 10, headers)
    assert value == b"v" * 10
    assert [k for k, _ in out] == ["x-error", "x-original-topic"]


# --- credentials -------------------------------------------------------------------------------
def test_an_empty_token_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="SHOPKEEPER_ADMIN_TOKEN is empty"):
        check_credentials("intake", Settings(shopkeeper_admin_token=" "))


def test_production_refuses_every_default_credential() -> None:
    with pytest.raises(RuntimeError) as err:
        check_credentials("intake", Settings(shopkeeper_env="production"))
    assert "local default" in str(err.value) and "default password" in str(err.value)


def test_production_starts_with_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPKEEPER_INTAKE_DATABASE_URL",
                       "postgresql://intake:9f2c1e7a55b04d@db:5432/shopkeeper")
    check_credentials("intake", Settings(shopkeeper_env="production",
                                         shopkeeper_admin_token="k3y-" + "a" * 40))
