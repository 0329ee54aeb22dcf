-- Per-store inventory policy ('*' is the default for stores without a row).
CREATE TABLE store_policies (
    store                 text PRIMARY KEY,
    split_allowed         boolean NOT NULL DEFAULT true,
    -- Cost of each extra warehouse in a split, in units of "one step down the region priority".
    split_penalty         numeric(6, 2) NOT NULL DEFAULT 1.5,
    -- hold: the whole order waits; ship_available: what is there ships, the rest is backordered.
    partial               text NOT NULL DEFAULT 'hold' CHECK (partial IN ('hold', 'ship_available')),
    backorder_limit_s     int NOT NULL DEFAULT 1209600 CHECK (backorder_limit_s > 0),
    -- A substitute's price may differ from the original's by at most this fraction.
    substitute_price_band numeric(4, 3) NOT NULL DEFAULT 0.2 CHECK (substitute_price_band >= 0)
);
INSERT INTO store_policies (store) VALUES ('*');

-- Receipts announced by purchasing (operator endpoint); a `received` adjustment with the same
-- reference closes one. They give backorders a restock ETA.
CREATE TABLE expected_receipts (
    id          bigserial PRIMARY KEY,
    sku         text NOT NULL,
    warehouse   text NOT NULL REFERENCES warehouses,
    quantity    int NOT NULL CHECK (quantity > 0),
    eta         timestamptz NOT NULL,
    reference   text,
    received_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX expected_receipts_open ON expected_receipts (sku, eta) WHERE received_at IS NULL;

-- Per-SKU supplier lead time for reorder hints (the service default when absent).
CREATE TABLE lead_times (
    sku  text PRIMARY KEY,
    days int NOT NULL CHECK (days >= 0)
);
-- Last low-stock state per SKU, so `inventory.stock_low` fires on the change, not every tick.
CREATE TABLE low_stock (
    sku        text PRIMARY KEY,
    low        boolean NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE orders
    ADD COLUMN store            text,
    ADD COLUMN trace            jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN substitutes      jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN restock_eta      timestamptz,
    ADD COLUMN decision         text,
    ADD COLUMN substitutions    jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN price_difference numeric(14, 2);
UPDATE orders SET store = split_part(order_key, ':', 1);
CREATE INDEX orders_key ON orders (order_key);

-- Reconciliation repairs drift with a correcting row (ledger rows are never edited).
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN (
    'receipt', 'count', 'damage', 'reserve', 'release', 'commit', 'return', 'substitution',
    'correction'));
CREATE INDEX ledger_commits ON ledger (sku, created_at) WHERE kind = 'commit';
