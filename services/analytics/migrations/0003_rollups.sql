-- Rollups kept by the events (docs/analytics.md): each handled event re-folds its order
-- (order_state), and the difference between the order's old and new contribution is added to
-- these tables in the same transaction. Reports read only these, so their cost follows the
-- number of days and slices asked for, not the number of orders ever seen.

-- The combinations of store, country and the order's warehouses and carriers (an order with
-- parcels from two warehouses has both): filters pick slice ids here, rollups are keyed by them.
CREATE TABLE slices (
    slice_id   bigint PRIMARY KEY,  -- rollups.slice_id(): a hash of the four (no lookup to write)
    store      text NOT NULL,
    country    text NOT NULL,
    warehouses text[] NOT NULL,
    carriers   text[] NOT NULL
);

-- One row per order: its facts folded so far (a compact copy of its rows in `facts`; NULL when
-- the order was written by the history generator or before this migration: then they are read
-- from `facts`), and what it last contributed to the rollups (JSON, see rollups.py).
CREATE TABLE order_state (
    order_key       text PRIMARY KEY,
    facts           jsonb,
    contrib         jsonb NOT NULL DEFAULT '{}'::jsonb,
    start_day       date,
    slice_id        bigint,
    hold_open_since timestamptz
);
-- Holds still open age with the clock, so they are read per order (few) rather than rolled up.
CREATE INDEX order_state_open_holds ON order_state (start_day, slice_id)
    WHERE hold_open_since IS NOT NULL;

CREATE TABLE r_daily (
    day date NOT NULL, slice_id bigint NOT NULL,
    orders int NOT NULL DEFAULT 0, sold int NOT NULL DEFAULT 0,
    reviewed int NOT NULL DEFAULT 0, accepted int NOT NULL DEFAULT 0,
    rejected int NOT NULL DEFAULT 0, held int NOT NULL DEFAULT 0,
    stock_decided int NOT NULL DEFAULT 0, backordered int NOT NULL DEFAULT 0,
    backordered_now int NOT NULL DEFAULT 0, shipped int NOT NULL DEFAULT 0,
    shipped_on_time int NOT NULL DEFAULT 0, parcels int NOT NULL DEFAULT 0,
    parcels_delivered int NOT NULL DEFAULT 0, parcels_on_time int NOT NULL DEFAULT 0,
    cost_total numeric(16, 2) NOT NULL DEFAULT 0, cost_samples int NOT NULL DEFAULT 0,
    return_requests int NOT NULL DEFAULT 0, ratings int NOT NULL DEFAULT 0,
    rating_sum int NOT NULL DEFAULT 0, baskets int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id)
);

CREATE TABLE r_status (
    day date NOT NULL, slice_id bigint NOT NULL, status text NOT NULL,
    orders int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, status)
);

CREATE TABLE r_reason (
    day date NOT NULL, slice_id bigint NOT NULL, status text NOT NULL, reason text NOT NULL,
    orders int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, status, reason)
);

-- Latency histograms: `bucket` is rollups.bucket(hours), about 5 % wide, so a percentile read
-- from here is within 5 % of the exact one.
CREATE TABLE r_latency (
    day date NOT NULL, slice_id bigint NOT NULL, metric text NOT NULL, bucket int NOT NULL,
    n int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, metric, bucket)
);

CREATE TABLE r_carrier (
    day date NOT NULL, slice_id bigint NOT NULL, carrier text NOT NULL, service text NOT NULL,
    parcels int NOT NULL DEFAULT 0, delivered int NOT NULL DEFAULT 0,
    on_time int NOT NULL DEFAULT 0, exceptions int NOT NULL DEFAULT 0,
    cost_total numeric(16, 2) NOT NULL DEFAULT 0, cost_samples int NOT NULL DEFAULT 0,
    promise_reported int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, carrier, service)
);

CREATE TABLE r_refund (
    day date NOT NULL, slice_id bigint NOT NULL, currency text NOT NULL, reason text NOT NULL,
    refunds int NOT NULL DEFAULT 0, amount numeric(16, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, currency, reason)
);

CREATE TABLE r_rating (
    day date NOT NULL, slice_id bigint NOT NULL, rating int NOT NULL,
    orders int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, rating)
);

CREATE TABLE r_return_reason (
    day date NOT NULL, slice_id bigint NOT NULL, reason text NOT NULL,
    requests int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, reason)
);

-- Per SKU per day: units and revenue sold, sold orders holding it, units of orders sold or
-- shipped (the base of the return rate), units asked back.
CREATE TABLE r_sku (
    day date NOT NULL, slice_id bigint NOT NULL, sku text NOT NULL,
    units int NOT NULL DEFAULT 0, revenue numeric(16, 2) NOT NULL DEFAULT 0,
    orders int NOT NULL DEFAULT 0, shipped_units int NOT NULL DEFAULT 0,
    returned int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, sku)
);

CREATE TABLE r_sku_reason (
    day date NOT NULL, slice_id bigint NOT NULL, sku text NOT NULL, reason text NOT NULL,
    units int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, sku, reason)
);

-- Bought together: sold orders holding both SKUs (sku_a < sku_b).
CREATE TABLE r_pair (
    day date NOT NULL, slice_id bigint NOT NULL, sku_a text NOT NULL, sku_b text NOT NULL,
    orders int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, sku_a, sku_b)
);

-- RFM and cohorts: sold orders per customer at their start time (recency needs the time), so a
-- date range answers by an index range, grouped by customer.
CREATE TABLE r_customer (
    started_at timestamptz NOT NULL, slice_id bigint NOT NULL, customer_id text NOT NULL,
    currency text NOT NULL,
    orders int NOT NULL DEFAULT 0, monetary numeric(16, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (started_at, slice_id, customer_id, currency)
);

-- All-time counts for GET /summary and the gauges (no date range).
CREATE TABLE t_status (
    store text NOT NULL, status text NOT NULL, orders bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store, status)
);
CREATE TABLE t_reason (
    status text NOT NULL, reason text NOT NULL, orders bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (status, reason)
);
CREATE TABLE t_refund (
    currency text PRIMARY KEY, amount numeric(18, 2) NOT NULL DEFAULT 0
);
CREATE TABLE t_rating (
    rating int PRIMARY KEY, orders bigint NOT NULL DEFAULT 0
);

-- Orders whose facts predate this migration are folded once by the service at start
-- (jobs.backfill), then this row says so.
CREATE TABLE rollup_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO rollup_meta VALUES ('backfilled', CASE WHEN EXISTS (SELECT 1 FROM facts)
                                                   THEN 'false' ELSE 'true' END);

-- Indexes for the stuck-orders gauge (open statuses by age) without reading every order.
CREATE INDEX orders_open_by_age ON orders (status_at)
    WHERE status NOT IN ('delivered', 'rejected', 'cancelled', 'refunded', 'return_rejected');
