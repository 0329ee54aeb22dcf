"""Amazon feeds after they are accepted (issue 19): the processing report's parser and what it
means for the write-back (done, failed with the report's words, or a refund already applied),
the refund's deterministic adjustment ids, and `check_feed` against the emulator (in process:
asynchronous processing, GZIP result documents, refusals of bad input, duplicates)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from services.channels.platforms import amazon
from services.channels.platforms.base import ChannelConfig, Job, Submitted
from tools import channel_emulator as emu_mod
from tools.channel_emulator import Emulator, amazon_order


def report(summary: tuple[int, int, int, int], *results: tuple[str, str, str, str]) -> bytes:
    """A processing report as Amazon writes it: (processed, successful, error, warning) and
    results (message id, ResultCode, ResultMessageCode, ResultDescription)."""
    parts = "".join(
        f"<Result><MessageID>{m}</MessageID><ResultCode>{c}</ResultCode>"
        f"<ResultMessageCode>{mc}</ResultMessageCode><ResultDescription>{d}</ResultDescription>"
        "<AdditionalInfo><AmazonOrderID>111-222</AmazonOrderID></AdditionalInfo></Result>"
        for m, c, mc, d in results)
    p, s, e, w = summary
    return (f'<?xml version="1.0" encoding="UTF-8"?><AmazonEnvelope><Header>'
            "<DocumentVersion>1.02</DocumentVersion><MerchantIdentifier>M</MerchantIdentifier>"
            "</Header><MessageType>ProcessingReport</MessageType><Message>"
            "<MessageID>1</MessageID><ProcessingReport>"
            "<DocumentTransactionID>50001</DocumentTransactionID><StatusCode>Complete"
            f"</StatusCode><ProcessingSummary><MessagesProcessed>{p}</MessagesProcessed>"
            f"<MessagesSuccessful>{s}</MessagesSuccessful><MessagesWithError>{e}"
            f"</MessagesWithError><MessagesWithWarning>{w}</MessagesWithWarning>"
            f"</ProcessingSummary>{parts}</ProcessingReport></Message>"
            "</AmazonEnvelope>").encode()


IDS = amazon.adjustment_ids("amzn-1:111-222", "req-1", 2)


def test_a_clean_report_is_done() -> None:
    parsed = amazon.parse_processing_report(report((1, 1, 0, 0)))
    assert (parsed.processed, parsed.successful, parsed.with_error) == (1, 1, 0)
    assert parsed.results == [] and parsed.status_code == "Complete"
    assert amazon.judge(parsed, IDS) == amazon.Verdict("done", None)


def test_warnings_leave_the_job_done_with_a_note() -> None:
    parsed = amazon.parse_processing_report(report(
        (1, 1, 0, 1), ("1", "Warning", "90007", "Order 111-222 is already cancelled")))
    verdict = amazon.judge(parsed)
    assert verdict.state == "done" and verdict.text and "already cancelled" in verdict.text


def test_a_partial_error_fails_the_job_with_the_reports_words() -> None:
    parsed = amazon.parse_processing_report(report(
        (2, 1, 1, 0), ("2", "Error", "90003", "The adjustment of 99.00 for item 111-0 is above"
                                              " what can be refunded")))
    [error] = parsed.errors
    assert (error.message_id, error.message_code) == ("2", "90003")
    assert error.additional == {"AmazonOrderID": "111-222"}
    verdict = amazon.judge(parsed, IDS)
    assert verdict.state == "failed" and not verdict.duplicate
    assert verdict.text is not None and verdict.text.startswith("partly applied: 2 message(s)")
    assert "90003" in verdict.text and "above what can be refunded" in verdict.text


def test_a_whole_error_says_nothing_was_applied() -> None:
    parsed = amazon.parse_processing_report(report(
        (1, 0, 1, 0), ("1", "Error", "90001", "Order 111-222 was not found for this seller")))
    verdict = amazon.judge(parsed, IDS)
    assert verdict.state == "failed" and verdict.text is not None
    assert verdict.text.startswith("not applied") and "was not found" in verdict.text


def test_duplicates_of_our_own_adjustment_ids_are_already_applied() -> None:
    parsed = amazon.parse_processing_report(report(
        (1, 0, 1, 0), *[("1", "Error", "90004", f"Duplicate MerchantAdjustmentItemID {i}: this"
                                                " adjustment was already processed")
                        for i in IDS]))
    verdict = amazon.judge(parsed, IDS)
    assert verdict.state == "done" and verdict.duplicate
    assert verdict.text is not None and verdict.text.startswith("already applied")
    # someone else's id, or a duplicate mixed with a real error, is a failure
    assert amazon.judge(parsed, amazon.adjustment_ids("amzn-1:other", "r", 2)).state == "failed"
    mixed = amazon.parse_processing_report(report(
        (1, 0, 1, 0), ("1", "Error", "90004", f"Duplicate MerchantAdjustmentItemID {IDS[0]}"),
        ("1", "Error", "90002", "Order item 111-9 is not in order 111-222")))
    assert amazon.judge(mixed, IDS).state == "failed"
    # a channel may name Amazon's code for it (`duplicate_result_codes`)
    coded = amazon.parse_processing_report(report(
        (1, 0, 1, 0), ("1", "Error", "12345", "Adjustment item id was seen before")))
    assert amazon.judge(coded, IDS).state == "failed"
    assert amazon.judge(coded, IDS, ("12345",)).duplicate


def test_what_is_not_a_processing_report_is_said_so() -> None:
    with pytest.raises(ValueError, match="not XML"):
        amazon.parse_processing_report(b"{\"errors\": []}")
    with pytest.raises(ValueError, match="ProcessingReport"):
        amazon.parse_processing_report(b"<AmazonEnvelope><Message/></AmazonEnvelope>")


def test_a_refunds_adjustment_ids_come_from_its_job() -> None:
    items = [{"orderItemId": "111-1", "price": "12.50"}, {"orderItemId": "111-2", "price": "16.00"}]
    def ids(order_key: str, ref: str) -> list[str | None]:
        root = ElementTree.fromstring(amazon.refund_feed("S", "111-222", Decimal("20.00"), "USD",
                                                         items, order_key, ref))
        return [i.findtext("MerchantAdjustmentItemID")
                for i in root.findall("Message/OrderAdjustment/AdjustedItem")]
    first = ids("amzn-1:111-222", "req-1")
    assert first == ids("amzn-1:111-222", "req-1")  # the same job: the same ids
    assert len(set(first)) == 2 and all(i and len(i) <= 40 for i in first)
    assert ids("amzn-1:111-222", "req-2") != first  # another refund of the order: others
    # in the schema's order: item code, adjustment id, reason
    root = ElementTree.fromstring(amazon.refund_feed("S", "1", Decimal("5"), "USD", items,
                                                     "k", "r"))
    item = root.find("Message/OrderAdjustment/AdjustedItem")
    assert item is not None and [c.tag for c in item][:3] == [
        "AmazonOrderItemCode", "MerchantAdjustmentItemID", "AdjustmentReason"]


# --- against the emulator (in process) -----------------------------------------------------------
@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    emu.feed_delay = 0.4
    yield emu
    emu.stop()


def amazon_job(emu: Emulator, oid: str, action: str, amount: str = "10.00",
               ref: str = "req-1") -> tuple[ChannelConfig, Job]:
    order, items = amazon_order(oid, [("MUG", 1, "20.00")])
    emu.add_amazon_order(order, items)
    cfg = ChannelConfig(store="amzn-unit", platform="amazon", api_base_url=emu.url,
                        secrets={"credentials": dict(emu_mod.LWA)}, sku_map={},
                        options={"rate_limits": {"getFeedDocument": [5, 10]}})
    job = Job(id=1, store=cfg.store, order_key=f"amzn-unit:{oid}", action=action,  # type: ignore[arg-type]
              platform_order_id=oid, details={"amount": amount, "currency": "USD"},
              order_data={"items": [{"orderItemId": f"{oid}-0", "quantity": 1, "sku": "MUG",
                                     "price": "20.00"}], "currency": "USD"}, ref=ref)
    return cfg, job


async def settle(client: httpx.AsyncClient, cfg: ChannelConfig, job: Job,
                 feed_id: str) -> tuple[list[str], amazon.FeedCheck]:
    seen = []
    for _ in range(50):
        check = await amazon.check_feed(client, cfg, job, feed_id)
        seen.append(check.status)
        if check.state != "submitted":
            return seen, check
        await asyncio.sleep(0.1)
    raise AssertionError(f"feed {feed_id} never settled: {seen}")


async def send(client: httpx.AsyncClient, cfg: ChannelConfig, job: Job) -> Submitted:
    sent = await amazon.write_back(client, amazon.bucket(), cfg, job)
    assert isinstance(sent, Submitted)
    return sent


async def test_a_refund_feed_is_processed_later_and_its_report_read(emulator: Emulator) -> None:
    """Given a refund feed Amazon has accepted, when it is checked while queued, in progress and
    done (the test moves the emulator's clock: no timing), then the job stays submitted until
    the processing report is read, and ends done with the refund applied."""
    cfg, job = amazon_job(emulator, "901-0000001-0000001", "refunded")
    emulator.feed_delay = 3600.0
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            sent = await send(client, cfg, job)
            assert sent.feed_type == "POST_PAYMENT_ADJUSTMENT_DATA" and sent.feed_document_id
            checks = [await amazon.check_feed(client, cfg, job, sent.feed_id)]
            for _ in range(2):
                emulator.age_feeds(1800.0)
                checks.append(await amazon.check_feed(client, cfg, job, sent.feed_id))
    finally:
        emulator.feed_delay = 0.4
    assert [c.status for c in checks] == ["IN_QUEUE", "IN_PROGRESS", "DONE"]
    assert [c.state for c in checks] == ["submitted", "submitted", "done"]
    check = checks[-1]
    assert (check.state, check.text) == ("done", None)
    assert check.report is not None and check.report.successful == 1
    [refund] = emulator.refunds_of(job.platform_order_id)
    assert refund["amount"] == Decimal("10.00")
    # the result document came GZIP-compressed from its pre-signed URL, without our token
    assert emulator.calls_to("/_s3/result-documents/", "GET")
    doc = next(iter(emulator.result_documents.values()))
    assert gzip.decompress(doc).startswith(b"<?xml")


async def test_a_refund_sent_again_is_already_applied_once(emulator: Emulator) -> None:
    cfg, job = amazon_job(emulator, "901-0000002-0000002", "refunded", amount="5.00")
    async with httpx.AsyncClient(timeout=10) as client:
        first = await send(client, cfg, job)
        again = await send(client, cfg, job)  # the crash window: sent, not recorded, resent
        _, one = await settle(client, cfg, job, first.feed_id)
        _, two = await settle(client, cfg, job, again.feed_id)
    assert (one.state, one.duplicate) == ("done", False)
    assert (two.state, two.duplicate) == ("done", True)
    assert two.text is not None and "already applied" in two.text
    assert [r["amount"] for r in emulator.refunds_of(job.platform_order_id)] == [Decimal("5.00")]


async def test_bad_refunds_fail_with_the_reason(emulator: Emulator) -> None:
    cfg, too_much = amazon_job(emulator, "901-0000003-0000003", "refunded", amount="500.00")
    _, unknown = amazon_job(emulator, "901-0000004-0000004", "refunded")
    emulator.amazon_orders.pop(unknown.platform_order_id)
    async with httpx.AsyncClient(timeout=10) as client:
        _, over = await settle(client, cfg, too_much,
                               (await send(client, cfg, too_much)).feed_id)
        _, lost = await settle(client, cfg, unknown, (await send(client, cfg, unknown)).feed_id)
    assert over.state == "failed" and over.text is not None
    assert "above what can be refunded" in over.text and over.text.startswith("not applied")
    assert lost.state == "failed" and lost.text is not None and "was not found" in lost.text
    assert emulator.refunds_of(too_much.platform_order_id) == []


async def test_fatal_and_cancelled_feeds_fail_the_job(emulator: Emulator) -> None:
    cfg, job = amazon_job(emulator, "901-0000005-0000005", "cancelled")
    results: list[Any] = []
    async with httpx.AsyncClient(timeout=10) as client:
        for outcome in ("FATAL", "CANCELLED", None):
            if outcome:
                emulator.feed_outcomes.append(outcome)
            results.append((await settle(client, cfg, job,
                                         (await send(client, cfg, job)).feed_id))[1])
    fatal, cancelled, done = results
    assert (fatal.status, fatal.state) == ("FATAL", "failed") and "FATAL" in fatal.text
    assert (cancelled.status, cancelled.state) == ("CANCELLED", "failed")
    assert (done.status, done.state) == ("DONE", "done")
    assert job.platform_order_id in emulator.cancelled
