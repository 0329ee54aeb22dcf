-- Sellers and their base currency (issue 22): intake owns the `sellers` setup section; analytics
-- keeps a copy from `setup.changed` (handlers.py) to report revenue, refunds and the average
-- order value of each seller in its base currency as well as per currency (docs/analytics.md
-- "Sellers and their base currency"). Nothing is seeded: a fresh stack has no seller, and a
-- store that no seller names is reported per currency only, as before.
CREATE TABLE sellers (
    seller_id     text PRIMARY KEY,
    name          text NOT NULL,
    base_currency text NOT NULL,
    stores        text[] NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Which seller a store belongs to: the newest change that names the store wins (a store moved
-- from one seller to another belongs to the second as soon as its change arrives; the two
-- sellers' changes have different keys, so they may be handled in either order: an older change
-- handled later does not take the store back).
CREATE TABLE seller_stores (
    store      text PRIMARY KEY,
    seller_id  text NOT NULL,
    changed_at timestamptz NOT NULL  -- the `occurred_at` of the change that named the store
);
CREATE INDEX seller_stores_seller ON seller_stores (seller_id);

-- Revenue per day, slice and currency: sold orders and their grand totals (rollups.py). Exact
-- amounts (no fixed scale): three-decimal currencies (KWD) keep their third decimal.
CREATE TABLE r_revenue (
    day date NOT NULL, slice_id bigint NOT NULL, currency text NOT NULL,
    orders int NOT NULL DEFAULT 0, amount numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slice_id, currency)
);

-- The orders folded before this migration: their revenue is what they put in r_customer (sold
-- orders with a customer id, at their start day: exactly what rollups.loads derives for a stored
-- contribution without r_revenue, so a later event of such an order subtracts what was added
-- here). r_customer kept two decimals, so a three-decimal currency's older orders may be off by
-- less than 0.005 each; orders folded from now on are exact.
INSERT INTO r_revenue (day, slice_id, currency, orders, amount)
SELECT day, slice_id, currency, sum(orders), sum(monetary) FROM r_customer
GROUP BY day, slice_id, currency HAVING sum(orders) <> 0 OR sum(monetary) <> 0;

-- Refunds of three-decimal currencies were rounded to two decimals; amounts are exact from now
-- on (the reports still print the per-currency figures as before).
ALTER TABLE r_refund ALTER COLUMN amount TYPE numeric;
