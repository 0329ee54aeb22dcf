-- Every event analytics learns from, once per event_id (re-deliveries end at the primary key).
-- KPIs fold an order's facts by occurred_at, so late and out-of-order events count correctly.
CREATE TABLE facts (
    event_id        uuid PRIMARY KEY,
    kind            text NOT NULL,
    order_key       text,
    tracking_number text,
    occurred_at     timestamptz NOT NULL,
    body            jsonb NOT NULL
);
CREATE INDEX facts_order ON facts (order_key) WHERE order_key IS NOT NULL;
CREATE INDEX facts_tracking ON facts (tracking_number) WHERE tracking_number IS NOT NULL;

-- One row per order, for time-range selection and search (customer, order id).
CREATE TABLE order_index (
    order_key         text PRIMARY KEY,
    store             text NOT NULL,
    external_order_id text NOT NULL,
    order_id          text,
    customer_id       text,
    country           text,
    placed_at         timestamptz,
    seen_at           timestamptz NOT NULL
);
CREATE INDEX order_index_started ON order_index ((coalesce(placed_at, seen_at)));
CREATE INDEX order_index_customer ON order_index (customer_id);
CREATE INDEX order_index_order_id ON order_index (order_id);

-- Which order a tracking number belongs to (carrier scans name only the tracking number).
CREATE TABLE parcel_index (
    tracking_number text PRIMARY KEY,
    order_key       text NOT NULL,
    parcel_id       text NOT NULL,
    carrier         text NOT NULL,
    warehouse       text NOT NULL
);
CREATE INDEX parcel_index_order ON parcel_index (order_key);

ALTER TABLE refunds ADD COLUMN reason text;

-- What the feedback loop last published per key, so an unchanged score is not re-sent.
CREATE TABLE feedback_published (
    topic     text NOT NULL,
    key       text NOT NULL,
    digest    text NOT NULL,
    published timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, key)
);
