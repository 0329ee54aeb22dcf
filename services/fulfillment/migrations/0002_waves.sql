-- Waves, pick lists, scan-to-verify, weigh check and merged parcels (issue 5).
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
    ('awaiting_pick', 'picking', 'short_picked', 'on_hold', 'packed', 'cancelled'));

-- The catalogue may not give one; a scan by SKU always works.
ALTER TABLE products ADD COLUMN gtin text;
CREATE UNIQUE INDEX products_gtin ON products (gtin) WHERE gtin IS NOT NULL;

CREATE TABLE bin_locations (
    sku   text PRIMARY KEY,
    zone  text NOT NULL,
    aisle int NOT NULL,
    rack  int NOT NULL,
    level int NOT NULL
);

CREATE TABLE waves (
    wave_id     text PRIMARY KEY,
    warehouse   text NOT NULL,
    status      text NOT NULL CHECK (status IN ('released', 'done')),
    size        int NOT NULL,
    -- Automatic mode: when the simulated pickers are done (pick seconds per line).
    pick_due_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX waves_open ON waves (created_at) WHERE status = 'released';

-- One order's work in one warehouse (an order split across warehouses has several).
CREATE TABLE picks (
    seq         bigserial UNIQUE,
    order_id    uuid NOT NULL REFERENCES orders,
    warehouse   text NOT NULL,
    lines       jsonb NOT NULL,
    express     boolean NOT NULL,
    merge_key   text NOT NULL,
    wave_id     text REFERENCES waves,
    group_id    text,
    status      text NOT NULL CHECK (status IN
        ('waiting', 'picking', 'verified', 'weighed', 'packed', 'short', 'on_hold', 'cancelled')),
    scanned     jsonb NOT NULL DEFAULT '{}',
    expected_g  int,
    measured_g  int,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, warehouse)
);
CREATE INDEX picks_waiting ON picks (warehouse, seq) WHERE status = 'waiting';
CREATE INDEX picks_wave ON picks (wave_id, group_id);

-- A parcel may carry several orders of one buyer (merged); each order's own lines in it.
CREATE TABLE parcel_orders (
    parcel_id text NOT NULL REFERENCES parcels,
    order_id  uuid NOT NULL REFERENCES orders,
    lines     jsonb NOT NULL,
    PRIMARY KEY (parcel_id, order_id)
);
CREATE INDEX parcel_orders_order ON parcel_orders (order_id);
ALTER TABLE parcels ADD COLUMN wave_id text;
