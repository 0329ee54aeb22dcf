-- Issue 3: explainable review rules, first-class holds, duplicates, promotions as data, risk.

-- Identities of an order, normalised by domain.py, for duplicate and merge look-ups.
ALTER TABLE orders ADD COLUMN address_key text, ADD COLUMN items_key text;
CREATE INDEX orders_by_customer ON orders (customer_id, received_at);
CREATE INDEX orders_by_address ON orders (address_key, received_at);
CREATE INDEX orders_recent ON orders (received_at DESC);

-- The rule set per store, as data ('*' is the default). A window of 0 turns a rule off.
ALTER TABLE store_policies
    ADD COLUMN high_value_action text NOT NULL DEFAULT 'hold'
        CHECK (high_value_action IN ('hold', 'reject')),
    ADD COLUMN duplicate_window_minutes int NOT NULL DEFAULT 0
        CHECK (duplicate_window_minutes >= 0),
    ADD COLUMN merge_window_minutes int NOT NULL DEFAULT 1440 CHECK (merge_window_minutes >= 0),
    ADD COLUMN hold_pending_payment boolean NOT NULL DEFAULT false,
    ADD COLUMN invalid_promo_action text NOT NULL DEFAULT 'reject'
        CHECK (invalid_promo_action IN ('hold', 'reject')),
    ADD COLUMN restricted_goods_action text NOT NULL DEFAULT 'hold'
        CHECK (restricted_goods_action IN ('hold', 'reject')),
    ADD COLUMN hold_sla_minutes int NOT NULL DEFAULT 240 CHECK (hold_sla_minutes > 0),
    ADD COLUMN updated_by text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- Promotions: scope, combinability, per-customer limit.
ALTER TABLE promotions
    ADD COLUMN scope_skus text[] NOT NULL DEFAULT '{}',
    ADD COLUMN scope_categories text[] NOT NULL DEFAULT '{}',
    ADD COLUMN stackable boolean NOT NULL DEFAULT true,
    ADD COLUMN per_customer_limit int CHECK (per_customer_limit > 0);
ALTER TABLE promotions ADD CONSTRAINT percent_at_most_100
    CHECK (kind <> 'percent' OR value <= 100);

-- A code counts as used by a customer once its order is accepted.
CREATE TABLE promo_uses (
    code        text NOT NULL,
    customer_id text NOT NULL,
    order_id    uuid NOT NULL,
    used_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code, order_id)
);
CREATE INDEX promo_uses_by_customer ON promo_uses (code, customer_id);

-- Blocked customers, matched on a normalised identity (domain.identities).
CREATE TABLE blocked_customers (
    kind       text NOT NULL CHECK (kind IN ('customer_id', 'email', 'phone', 'address')),
    value      text NOT NULL,
    action     text NOT NULL DEFAULT 'hold' CHECK (action IN ('hold', 'reject')),
    note       text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- Holds: one open hold per order; closed holds stay as history.
CREATE TABLE holds (
    hold_id      bigserial PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders (order_id),
    store        text NOT NULL,
    codes        text[] NOT NULL,
    reasons      jsonb NOT NULL,
    owner        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sla_seconds  int NOT NULL,
    sla_breached_at timestamptz,
    closed_at    timestamptz,
    resolution   text CHECK (resolution IN
                     ('released', 'approved', 'rejected', 'cancelled', 'rejected_on_review')),
    closed_by    text
);
CREATE UNIQUE INDEX holds_one_open ON holds (order_id) WHERE closed_at IS NULL;
CREATE INDEX holds_open ON holds (created_at) WHERE closed_at IS NULL;

-- Every review of an order: the outcome and the rules that fired with their inputs.
CREATE TABLE decisions (
    decision_id bigserial PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES orders (order_id),
    decided_at  timestamptz NOT NULL DEFAULT now(),
    trigger     text NOT NULL,
    status      text NOT NULL,
    reasons     jsonb NOT NULL,
    rules       jsonb NOT NULL,
    policy      jsonb NOT NULL
);
CREATE INDEX decisions_by_order ON decisions (order_id, decision_id);

-- What operators did, and why: who, when, what, the note.
CREATE TABLE audit (
    audit_id  bigserial PRIMARY KEY,
    order_id  uuid,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    note      text,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_order ON audit (order_id, audit_id);

-- Orders held before holds were first-class get their hold row.
INSERT INTO holds (order_id, store, codes, reasons, created_at, sla_seconds)
SELECT order_id, store, ARRAY(SELECT r->>'code' FROM jsonb_array_elements(reasons) AS r),
       reasons, received_at, 14400
FROM orders WHERE status = 'on_hold';
