CREATE TABLE products (
    sku         text PRIMARY KEY,
    weight_g    int NOT NULL,
    dims        int[] NOT NULL,
    attributes  text[] NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL
);

CREATE TABLE boxes (
    code         text PRIMARY KEY,
    inner_l      int NOT NULL,
    inner_w      int NOT NULL,
    inner_h      int NOT NULL,
    tare_g       int NOT NULL,
    max_weight_g int NOT NULL
);
INSERT INTO boxes VALUES
    ('BOX-S', 220, 160, 100, 120, 3000),
    ('BOX-M', 320, 240, 160, 250, 10000),
    ('BOX-L', 450, 350, 250, 450, 20000),
    ('BOX-XL', 600, 400, 400, 800, 30000);

CREATE TABLE orders (
    order_id       uuid PRIMARY KEY,
    order_key      text NOT NULL,
    status         text NOT NULL CHECK (status IN ('awaiting_pick', 'packed', 'cancelled')),
    snapshot       jsonb,
    allocations    jsonb NOT NULL DEFAULT '[]',
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE parcels (
    parcel_id  text PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders,
    warehouse  text NOT NULL,
    box        text NOT NULL,
    weight_g   int NOT NULL,
    lines      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parcels_order ON parcels (order_id);
