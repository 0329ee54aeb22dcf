CREATE TABLE orders (
    order_id          uuid PRIMARY KEY,
    order_key         text NOT NULL UNIQUE,
    snapshot          jsonb NOT NULL,
    parcels           jsonb NOT NULL DEFAULT '[]',
    delivered_at      timestamptz,
    correlation_id    text
);

CREATE TABLE products (
    sku         text PRIMARY KEY,
    returnable  boolean NOT NULL,
    occurred_at timestamptz NOT NULL
);

CREATE TABLE policies (
    store                       text PRIMARY KEY,     -- '*' is the default
    return_window_days          int NOT NULL,
    refund_without_return_below numeric(10, 2) NOT NULL
);
INSERT INTO policies VALUES ('*', 30, 15.00);

CREATE TABLE requests (
    order_key   text NOT NULL,
    request_id  text NOT NULL,
    order_id    uuid,
    kind        text NOT NULL,
    reason      text NOT NULL,
    lines       jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN ('authorized', 'rejected', 'review', 'received',
                                                'refunded', 'inspection')),
    decision    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_key, request_id)
);
CREATE INDEX requests_review ON requests (created_at) WHERE status IN ('review', 'inspection');

-- Audit trail of every request's changes.
CREATE TABLE request_history (
    id         bigserial PRIMARY KEY,
    order_key  text NOT NULL,
    request_id text NOT NULL,
    status     text NOT NULL,
    note       text,
    at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refunds (
    id               bigserial PRIMARY KEY,
    order_id         uuid NOT NULL,
    request_id       text NOT NULL,
    amount           numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency         text NOT NULL,
    includes_shipping boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, request_id)
);

CREATE TABLE feedback (
    event_id    uuid PRIMARY KEY,
    order_key   text NOT NULL,
    rating      int NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment     text,
    occurred_at timestamptz NOT NULL
);
