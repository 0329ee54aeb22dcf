-- Exchange, reship, return labels, grading, feedback tags and follow-ups, operator decisions.

ALTER TABLE policies
    ADD COLUMN return_shipping_cost numeric(10, 2) NOT NULL DEFAULT 5.00,
    ADD COLUMN replacement_without_review_below numeric(10, 2) NOT NULL DEFAULT 200.00;

ALTER TABLE products ADD COLUMN price numeric(14, 2), ADD COLUMN active boolean NOT NULL DEFAULT true;

ALTER TABLE requests DROP CONSTRAINT requests_status_check;
ALTER TABLE requests ADD CONSTRAINT requests_status_check CHECK (status IN (
    'authorized', 'rejected', 'review', 'received', 'refunded', 'inspection', 'replaced'));
ALTER TABLE requests
    ADD COLUMN store text,
    ADD COLUMN exchange_for jsonb,
    ADD COLUMN comment text,
    ADD COLUMN source text NOT NULL DEFAULT 'customer',     -- customer | carrier (a lost parcel)
    ADD COLUMN grade text CHECK (grade IN ('resellable', 'refurbish', 'scrap')),
    ADD COLUMN returned_lines jsonb,
    ADD COLUMN return_label jsonb;

ALTER TABLE request_history ADD COLUMN actor text NOT NULL DEFAULT 'policy';

-- Replacement orders (exchange, reship): a new order linked to the one it replaces. Known here
-- like any accepted order (the `orders` table), so a replacement can itself be returned.
CREATE TABLE replacements (
    order_id          uuid PRIMARY KEY,
    order_key         text NOT NULL UNIQUE,
    replaces_order_id uuid NOT NULL,
    request_id        text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('exchange', 'reship')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (replaces_order_id, request_id)
);

-- Returned goods that are not back on the shelf: refurbish is its own stock state, scrap is
-- written off. Resellable goods are restocked by inventory (aftersales.return_restocked).
CREATE TABLE returned_stock (
    id         bigserial PRIMARY KEY,
    order_key  text NOT NULL,
    request_id text NOT NULL,
    sku        text NOT NULL,
    warehouse  text NOT NULL,
    quantity   int NOT NULL CHECK (quantity > 0),
    state      text NOT NULL CHECK (state IN ('refurbish', 'written_off')),
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE feedback ADD COLUMN tags text[] NOT NULL DEFAULT '{}';

-- A rating of 2 or less opens a follow-up case for a person.
CREATE TABLE follow_ups (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    order_key  text NOT NULL,
    rating     int NOT NULL,
    tags       text[] NOT NULL,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now()
);
