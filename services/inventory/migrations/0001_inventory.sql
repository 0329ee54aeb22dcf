CREATE TABLE warehouses (
    code    text PRIMARY KEY,
    name    text NOT NULL,
    country text NOT NULL
);
INSERT INTO warehouses VALUES
    ('WH-LA', 'Los Angeles', 'US'),
    ('WH-SZ', 'Shenzhen', 'CN'),
    ('WH-FRA', 'Frankfurt', 'DE');

-- Which warehouse to try first for a destination country ('*' for the rest), as data.
CREATE TABLE warehouse_priority (
    destination text NOT NULL,
    rank        int NOT NULL,
    warehouse   text NOT NULL REFERENCES warehouses,
    PRIMARY KEY (destination, rank)
);
INSERT INTO warehouse_priority
SELECT d, 1, 'WH-LA' FROM unnest(ARRAY['US', 'CA', 'MX', 'BR']) d
UNION ALL SELECT d, 2, 'WH-SZ' FROM unnest(ARRAY['US', 'CA', 'MX', 'BR']) d
UNION ALL SELECT d, 1, 'WH-FRA' FROM unnest(ARRAY['GB', 'DE', 'FR', 'ES', 'IT', 'NL', 'PL']) d
UNION ALL SELECT d, 2, 'WH-SZ' FROM unnest(ARRAY['GB', 'DE', 'FR', 'ES', 'IT', 'NL', 'PL']) d
UNION ALL SELECT d, 1, 'WH-SZ' FROM unnest(ARRAY['AU', 'JP', 'KR', 'SG', 'MY', 'TH', 'PH', 'ID', 'VN', 'CN']) d
UNION ALL SELECT '*', 1, 'WH-SZ';

CREATE TABLE products (
    sku         text PRIMARY KEY,
    category    text NOT NULL,
    price       numeric(14, 2) NOT NULL,
    attributes  text[] NOT NULL DEFAULT '{}',
    active      boolean NOT NULL,
    occurred_at timestamptz NOT NULL
);

-- The balance that makes overselling impossible: the CHECKs hold under any race.
CREATE TABLE stock (
    sku       text NOT NULL,
    warehouse text NOT NULL REFERENCES warehouses,
    on_hand   int NOT NULL DEFAULT 0,
    reserved  int NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, warehouse),
    CONSTRAINT reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT available_not_negative CHECK (on_hand - reserved >= 0)
);

-- Every movement, append-only; balances are derivable from it.
CREATE TABLE ledger (
    id             bigserial PRIMARY KEY,
    sku            text NOT NULL,
    warehouse      text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('receipt', 'count', 'damage', 'reserve',
                                                 'release', 'commit', 'return', 'substitution')),
    on_hand_delta  int NOT NULL,
    reserved_delta int NOT NULL,
    order_id       uuid,
    reference      text,
    event_id       uuid,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_sku ON ledger (sku, warehouse);
CREATE RULE ledger_no_update AS ON UPDATE TO ledger DO INSTEAD NOTHING;
CREATE RULE ledger_no_delete AS ON DELETE TO ledger DO INSTEAD NOTHING;

-- Orders as inventory sees them.
CREATE TABLE orders (
    order_id    uuid PRIMARY KEY,
    order_key   text NOT NULL,
    status      text NOT NULL CHECK (status IN ('reserved', 'backordered', 'committed',
                                                'cancelled')),
    snapshot    jsonb,              -- null for a cancellation that arrived first
    correlation_id text,
    allocations jsonb NOT NULL DEFAULT '[]',
    short_lines jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_backordered ON orders (created_at) WHERE status = 'backordered';
