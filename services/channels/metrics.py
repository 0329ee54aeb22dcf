"""Channels' metrics: deliveries in by platform and outcome, polls, write-back calls out."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter("shopkeeper_channel_deliveries_total",
                     "Deliveries from platforms (webhooks, polled orders) by outcome",
                     ["platform", "outcome"])
WEBHOOK_SECONDS = Histogram("shopkeeper_channel_webhook_seconds",
                            "Time to answer a webhook (verified, committed)", ["platform"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
WRITEBACKS = Counter("shopkeeper_channel_writebacks_total",
                     "Write-back calls to platforms by action and outcome"
                     " (done, submitted, retry, failed, skipped)",
                     ["platform", "action", "outcome"])
WRITEBACKS_PENDING = Gauge("shopkeeper_channel_writebacks_pending",
                           "Write-backs waiting to be done")
WRITEBACKS_FAILED = Gauge("shopkeeper_channel_writebacks_failed",
                          "Write-backs given up on (need an operator)")
WRITEBACKS_SUBMITTED = Gauge("shopkeeper_channel_writebacks_submitted",
                             "Write-backs whose feed the platform accepted, waiting for its"
                             " processing report")
FEEDS = Counter("shopkeeper_channel_feeds_total",
                "Feeds' processing outcomes by feed type (done, already_applied, failed,"
                " fatal, cancelled)", ["platform", "feed_type", "outcome"])
RATE_LIMITED = Counter("shopkeeper_channel_rate_limited_total",
                       "Answers 429 from a platform", ["platform", "operation"])
POLLS = Counter("shopkeeper_channel_polls_total", "Marketplace polls by outcome",
                ["platform", "outcome"])
