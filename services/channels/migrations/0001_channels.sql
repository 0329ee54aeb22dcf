-- A store's channel: the platform it runs on and how to reach it. Secrets (webhook secret,
-- API credentials) are one Fernet token (SHOPKEEPER_CHANNELS_SECRET_KEY), never stored in clear.
CREATE TABLE channels (
    store            text PRIMARY KEY,
    platform         text NOT NULL CHECK (platform IN ('shopify', 'woocommerce', 'amazon',
                                                       'generic')),
    api_base_url     text,
    secrets          bytea NOT NULL,
    sku_map          jsonb NOT NULL DEFAULT '{}',
    default_currency text NOT NULL DEFAULT 'USD',
    options          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The channel's own inbox: every delivery (webhook, polled order) is written here, with the
-- events it became in the outbox, in one transaction, before the platform hears 200. The
-- platform's delivery id deduplicates.
CREATE TABLE deliveries (
    store        text NOT NULL,
    delivery_id  text NOT NULL,
    platform     text NOT NULL,
    topic        text NOT NULL,
    external_order_id text,
    outcome      text NOT NULL CHECK (outcome IN ('placed', 'cancel_requested', 'ignored',
                                                  'unmappable')),
    reason       text,
    -- Kept only for an unmappable delivery, so that nothing is lost: fix and replay.
    body         bytea,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, delivery_id)
);
CREATE INDEX deliveries_recent ON deliveries (store, received_at DESC);

-- What write-back needs of an order the platform sent (its platform ids, Amazon's item ids).
CREATE TABLE channel_orders (
    order_key          text PRIMARY KEY,
    store              text NOT NULL,
    platform_order_id  text NOT NULL,
    order_name         text,
    data               jsonb NOT NULL DEFAULT '{}',
    cancelled_on_platform boolean NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The channel's own outbox of calls to the platform (fulfillment, cancel, refund), worked by
-- the write-back worker with retries and backoff.
CREATE TABLE writebacks (
    id              bigserial PRIMARY KEY,
    store           text NOT NULL,
    order_key       text NOT NULL,
    action          text NOT NULL CHECK (action IN ('shipped', 'cancelled', 'refunded')),
    ref             text NOT NULL DEFAULT '',
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    UNIQUE (order_key, action, ref)
);
CREATE INDEX writebacks_due ON writebacks (next_attempt_at) WHERE state = 'pending';

-- Marketplace pull: one cursor per store (Amazon's LastUpdatedAfter), moved after a full listing.
CREATE TABLE poll_cursors (
    store          text PRIMARY KEY,
    updated_after  timestamptz NOT NULL,
    last_run_at    timestamptz,
    last_ok_at     timestamptz,
    last_error     text,
    orders_seen    bigint NOT NULL DEFAULT 0
);
