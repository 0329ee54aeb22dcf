"""SQL for the channels schema: channel config, the deliveries inbox, what write-back needs of
each order, the write-back queue and the marketplace cursors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.db import Conn
from shared.uow import UnitOfWork

from . import crypto
from .platforms.base import ChannelConfig


async def put_channel(conn: Conn, store: str, platform: str, api_base_url: str | None,
                      secrets: dict[str, Any], sku_map: dict[str, str], default_currency: str,
                      options: dict[str, Any]) -> bool:
    """Create or replace; True when it was new."""
    row = await conn.fetchrow(
        "INSERT INTO channels (store, platform, api_base_url, secrets, sku_map, default_currency,"
        " options) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb)"
        " ON CONFLICT (store) DO UPDATE SET platform = EXCLUDED.platform,"
        " api_base_url = EXCLUDED.api_base_url, secrets = EXCLUDED.secrets,"
        " sku_map = EXCLUDED.sku_map, default_currency = EXCLUDED.default_currency,"
        " options = EXCLUDED.options, updated_at = now()"
        " RETURNING (xmax = 0) AS inserted",
        store, platform, api_base_url, crypto.seal(secrets), json.dumps(sku_map),
        default_currency, json.dumps(options))
    return bool(row and row["inserted"])


async def delete_channel(conn: Conn, store: str) -> bool:
    return (await conn.execute("DELETE FROM channels WHERE store = $1", store)) == "DELETE 1"


def _config(row: Any) -> ChannelConfig:
    return ChannelConfig(store=row["store"], platform=row["platform"],
                         api_base_url=row["api_base_url"], secrets=crypto.unseal(row["secrets"]),
                         sku_map=json.loads(row["sku_map"]),
                         default_currency=row["default_currency"],
                         options=json.loads(row["options"]))


async def get_channel(conn: Conn, store: str) -> ChannelConfig | None:
    row = await conn.fetchrow("SELECT * FROM channels WHERE store = $1", store)
    return _config(row) if row else None


async def channels_of(conn: Conn, platform: str) -> list[ChannelConfig]:
    return [_config(r) for r in await conn.fetch(
        "SELECT * FROM channels WHERE platform = $1 ORDER BY store", platform)]


async def platforms_of(uow: UnitOfWork, stores: list[str]) -> dict[str, str]:
    """The platform of each of `stores` that has a channel (cached across runs until
    `channels` changes)."""
    async def load() -> dict[str, str]:
        rows = await uow.conn.fetch(
            "SELECT store, platform FROM channels WHERE store = ANY($1::text[])", stores)
        return {r["store"]: str(r["platform"]) for r in rows}
    return await uow.reference(("channels.platform", tuple(sorted(stores))), load,
                               tables=("channels",))


async def list_channels(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT c.store, c.platform, c.api_base_url, c.sku_map, c.default_currency, c.options,"
        " c.created_at, c.updated_at,"
        " (SELECT max(received_at) FROM deliveries d WHERE d.store = c.store) AS last_delivery_at,"
        " (SELECT count(*) FROM deliveries d WHERE d.store = c.store) AS deliveries,"
        " (SELECT count(*) FROM writebacks w WHERE w.store = c.store AND w.state = 'pending')"
        "   AS writebacks_pending,"
        " (SELECT count(*) FROM writebacks w WHERE w.store = c.store AND w.state = 'failed')"
        "   AS writebacks_failed,"
        " (SELECT count(*) FROM writebacks w WHERE w.store = c.store AND w.state = 'submitted')"
        "   AS writebacks_submitted,"
        " (SELECT count(*) FROM writebacks w WHERE w.store = c.store AND w.state = 'done')"
        "   AS writebacks_done,"
        " p.updated_after AS poll_cursor, p.last_ok_at AS poll_last_ok_at,"
        " p.last_error AS poll_last_error"
        " FROM channels c LEFT JOIN poll_cursors p ON p.store = c.store ORDER BY c.store")
    out = []
    for r in rows:
        d = dict(r)
        d["sku_map"] = json.loads(d["sku_map"])
        d["options"] = json.loads(d["options"])
        for k in ("created_at", "updated_at", "last_delivery_at", "poll_cursor",
                  "poll_last_ok_at"):
            d[k] = d[k].isoformat() if d[k] else None
        out.append(d)
    return out


async def record_delivery(conn: Conn, store: str, delivery_id: str, platform: str, topic: str,
                          external_order_id: str | None, outcome: str, reason: str | None,
                          body: bytes | None = None) -> bool:
    """The channel's inbox: True the first time this delivery is seen."""
    return bool(await conn.fetchval(
        "INSERT INTO deliveries (store, delivery_id, platform, topic, external_order_id,"
        " outcome, reason, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING RETURNING true",
        store, delivery_id, platform, topic, external_order_id, outcome, reason, body))


async def recent_deliveries(conn: Conn, store: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT delivery_id, topic, external_order_id, outcome, reason, received_at"
        " FROM deliveries WHERE store = $1 ORDER BY received_at DESC LIMIT $2", store, limit)
    return [{**dict(r), "received_at": r["received_at"].isoformat()} for r in rows]


async def remember_order(conn: Conn, order_key: str, store: str, platform_order_id: str,
                         order_name: str | None, data: dict[str, Any],
                         cancelled: bool = False) -> None:
    await conn.execute(
        "INSERT INTO channel_orders (order_key, store, platform_order_id, order_name, data,"
        " cancelled_on_platform) VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
        " ON CONFLICT (order_key) DO UPDATE SET"
        " order_name = coalesce(EXCLUDED.order_name, channel_orders.order_name),"
        " data = CASE WHEN EXCLUDED.data = '{}'::jsonb THEN channel_orders.data"
        "        ELSE EXCLUDED.data END,"
        " cancelled_on_platform = channel_orders.cancelled_on_platform"
        "                         OR EXCLUDED.cancelled_on_platform,"
        " updated_at = now()",
        order_key, store, platform_order_id, order_name, json.dumps(data), cancelled)


async def enqueue_writebacks(conn: Conn, jobs: list[tuple[str, str, str, str, dict[str, Any]]]
                             ) -> None:
    """Write-back jobs `(store, order_key, action, ref, payload)` in one statement, in this
    order; a job already there (the same order, action and ref) is left as it is."""
    if not jobs:
        return
    await conn.execute(
        "INSERT INTO writebacks (store, order_key, action, ref, payload)"
        " SELECT j.store, j.order_key, j.action, j.ref, j.payload::jsonb FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY"
        " AS j(store, order_key, action, ref, payload, n) ORDER BY j.n ON CONFLICT DO NOTHING",
        [j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs], [j[3] for j in jobs],
        [json.dumps(j[4]) for j in jobs])


async def claim_due(conn: Conn) -> Any:
    """One due write-back (pending: to send; submitted: its feed to look at), locked for this
    transaction; other instances skip it."""
    return await conn.fetchrow(
        "SELECT w.*, o.platform_order_id, o.data AS order_data, o.cancelled_on_platform"
        " FROM writebacks w LEFT JOIN channel_orders o ON o.order_key = w.order_key"
        " WHERE w.state IN ('pending', 'submitted') AND w.next_attempt_at <= now()"
        " ORDER BY w.next_attempt_at, w.id LIMIT 1 FOR UPDATE OF w SKIP LOCKED")


async def next_writeback_in(conn: Conn) -> float | None:
    """Seconds until the next write-back comes due (<= 0: one is due now), None with none
    waiting: an idle worker sleeps until then (by the two partial indexes)."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM least("
        "(SELECT min(next_attempt_at) FROM writebacks WHERE state = 'pending'),"
        " (SELECT min(next_attempt_at) FROM writebacks WHERE state = 'submitted')) - now())")
    return float(value) if value is not None else None


async def finish_writeback(conn: Conn, wid: int, state: str, error: str | None,
                           attempts: int, delay_s: float = 0.0, note: str | None = None,
                           feed_status: str | None = None) -> None:
    """The job's new state; `note` and `feed_status` replace theirs only when given."""
    await conn.execute(
        "UPDATE writebacks SET state = $2, last_error = $3, attempts = $4,"
        " next_attempt_at = now() + make_interval(secs => $5),"
        " note = coalesce($6, note), feed_status = coalesce($7, feed_status),"
        " done_at = CASE WHEN $2 IN ('pending', 'submitted') THEN NULL ELSE now() END"
        " WHERE id = $1",
        wid, state, error, attempts, delay_s, note, feed_status)


async def feed_submitted(conn: Conn, wid: int, feed_id: str, document_id: str, feed_type: str,
                         attempts: int, delay_s: float) -> None:
    """The platform accepted the job's feed: its ids are kept, in the transaction that sent it,
    before anything is marked done. From here the job is only ever polled, never sent again."""
    await conn.execute(
        "UPDATE writebacks SET state = 'submitted', feed_id = $2, feed_document_id = $3,"
        " feed_type = $4, feed_status = 'SUBMITTED', feed_checks = 0, submitted_at = now(),"
        " attempts = $5, last_error = NULL, done_at = NULL,"
        " next_attempt_at = now() + make_interval(secs => $6) WHERE id = $1",
        wid, feed_id, document_id, feed_type, attempts, delay_s)


async def feed_checked(conn: Conn, wid: int, feed_status: str | None, error: str | None,
                       delay_s: float) -> None:
    """A look at a submitted feed that did not settle it: look again after `delay_s`."""
    await conn.execute(
        "UPDATE writebacks SET feed_status = coalesce($2, feed_status), last_error = $3,"
        " feed_checks = feed_checks + 1, next_attempt_at = now() + make_interval(secs => $4)"
        " WHERE id = $1", wid, feed_status, error, delay_s)


async def writeback_counts(conn: Conn) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,"
        " count(*) FILTER (WHERE state = 'failed') AS failed,"
        " count(*) FILTER (WHERE state = 'submitted') AS submitted,"
        " extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))"
        "   AS oldest_pending_seconds,"
        " extract(epoch FROM now() - min(submitted_at) FILTER (WHERE state = 'submitted'))"
        "   AS oldest_submitted_seconds FROM writebacks")
    assert row is not None
    return {"pending": row["pending"], "failed": row["failed"], "submitted": row["submitted"],
            "oldest_pending_seconds": float(row["oldest_pending_seconds"] or 0),
            "oldest_submitted_seconds": float(row["oldest_submitted_seconds"] or 0)}


async def writebacks_of(conn: Conn, store: str, state: str | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, order_key, action, ref, state, attempts, last_error, note, feed_id,"
        " feed_document_id, feed_type, feed_status, submitted_at, created_at, done_at"
        " FROM writebacks WHERE store = $1 AND ($2::text IS NULL OR state = $2)"
        " ORDER BY id DESC LIMIT $3", store, state, limit)
    return [{**dict(r), **{k: r[k].isoformat() if r[k] else None
                           for k in ("created_at", "done_at", "submitted_at")}}
            for r in rows]


# A feed whose processing is over (its report read): a retry sends the job again.
_SETTLED = "feed_status IN ('DONE', 'CANCELLED', 'FATAL')"


async def retry_failed(conn: Conn, store: str) -> int:
    """Failed jobs again. One whose feed was processed (and refused) is sent anew (its feed id
    kept in the note); one whose feed could not be looked at goes back to looking at it: a
    feed Amazon accepted is never sent twice by us."""
    return int((await conn.execute(
        "UPDATE writebacks SET attempts = 0, feed_checks = 0, next_attempt_at = now(),"
        f" state = CASE WHEN feed_id IS NULL OR {_SETTLED} THEN 'pending' ELSE 'submitted' END,"
        f" note = CASE WHEN feed_id IS NOT NULL AND {_SETTLED} THEN"
        "   'retried after feed ' || feed_id || ': ' || coalesce(last_error, '') ELSE note END,"
        f" feed_id = CASE WHEN {_SETTLED} THEN NULL ELSE feed_id END,"
        f" feed_document_id = CASE WHEN {_SETTLED} THEN NULL ELSE feed_document_id END,"
        f" feed_status = CASE WHEN {_SETTLED} THEN NULL ELSE feed_status END"
        " WHERE store = $1 AND state = 'failed'", store)).split()[-1])


async def cursor(conn: Conn, store: str, start: datetime) -> datetime:
    await conn.execute("INSERT INTO poll_cursors (store, updated_after) VALUES ($1, $2)"
                       " ON CONFLICT DO NOTHING", store, start)
    value: datetime = await conn.fetchval(
        "SELECT updated_after FROM poll_cursors WHERE store = $1", store)
    return value


async def poll_done(conn: Conn, store: str, new_cursor: datetime | None, seen: int,
                    error: str | None) -> None:
    await conn.execute(
        "UPDATE poll_cursors SET updated_after = coalesce($2, updated_after), last_run_at = now(),"
        " last_ok_at = CASE WHEN $4::text IS NULL THEN now() ELSE last_ok_at END,"
        " last_error = $4, orders_seen = orders_seen + $3 WHERE store = $1",
        store, new_cursor, seen, error)


async def poll_states(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM poll_cursors ORDER BY store")
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
            for r in rows]
