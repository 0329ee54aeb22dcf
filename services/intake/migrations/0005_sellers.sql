-- Sellers (setup section `sellers`, services/intake/kinds.py): who sells through which stores,
-- and the currency they keep their books in (analytics reports in it). A store belongs to at
-- most one seller; a store no seller names is reported as it always was. No seed: a fresh stack
-- has no sellers and behaves as before.
CREATE TABLE sellers (
    seller_id     text PRIMARY KEY,
    name          text NOT NULL,
    base_currency text NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Which seller a store belongs to (GET /stores/{store}/seller). The key is (store, seller) and
-- not the store alone so that one request may move a store from one seller to another in any
-- order; the setup kind checks, before the request commits, that no store is left with two.
CREATE TABLE seller_stores (
    store     text NOT NULL,
    seller_id text NOT NULL REFERENCES sellers ON DELETE CASCADE,
    PRIMARY KEY (store, seller_id)
);
CREATE INDEX seller_stores_by_seller ON seller_stores (seller_id);
