CREATE TABLE orders (
    order_id          uuid PRIMARY KEY,
    store             text NOT NULL,
    external_order_id text NOT NULL,
    customer_id       text,
    status            text NOT NULL,
    reasons           jsonb NOT NULL DEFAULT '[]',
    payload           jsonb,            -- the order as received (null when malformed)
    grand_total       numeric(14, 2),
    currency          text,
    payment_status    text,
    shipped           boolean NOT NULL DEFAULT false,
    received_at       timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store, external_order_id)
);
CREATE INDEX orders_on_hold ON orders (received_at) WHERE status = 'on_hold';

-- What intake knows of the catalogue (from catalog.products), newest event wins.
CREATE TABLE products (
    sku         text PRIMARY KEY,
    active      boolean NOT NULL,
    category    text NOT NULL,
    price       numeric(14, 2) NOT NULL,
    attributes  text[] NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL
);

-- Countries logistics serves (from logistics.coverage_changed), newest event wins.
CREATE TABLE coverage (
    id                 int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    countries          text[] NOT NULL,
    refused_attributes jsonb NOT NULL DEFAULT '{}',
    occurred_at        timestamptz NOT NULL
);

-- Promotions as data.
CREATE TABLE promotions (
    code      text PRIMARY KEY,
    kind      text NOT NULL CHECK (kind IN ('percent', 'fixed')),
    value     numeric(14, 2) NOT NULL CHECK (value >= 0),
    min_spend numeric(14, 2) NOT NULL DEFAULT 0,
    starts_at timestamptz,
    ends_at   timestamptz,
    active    boolean NOT NULL DEFAULT true
);
INSERT INTO promotions (code, kind, value, min_spend) VALUES
    ('WELCOME10', 'percent', 10, 0),
    ('SAVE5', 'fixed', 5, 30);

CREATE TABLE store_policies (
    store                text PRIMARY KEY,   -- '*' is the default
    high_value_threshold numeric(14, 2) NOT NULL
);
INSERT INTO store_policies VALUES ('*', 2000.00);

-- A cancellation that arrived before its order (different topics have no mutual order).
CREATE TABLE early_cancellations (
    store             text NOT NULL,
    external_order_id text NOT NULL,
    reason            text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, external_order_id)
);
