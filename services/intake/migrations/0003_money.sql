-- Money as a seller has it (docs/intake.md "Currencies and price lists"): the high-value
-- threshold names its currency; a tolerance for price-list checks; price lists per store and
-- currency with validity dates ('*' is every store's default list).
ALTER TABLE store_policies
    ADD COLUMN high_value_currency text NOT NULL DEFAULT 'USD'
        CHECK (high_value_currency ~ '^[A-Z]{3}$'),
    ADD COLUMN price_tolerance_percent numeric(6, 2) NOT NULL DEFAULT 2.00
        CHECK (price_tolerance_percent >= 0),
    ALTER COLUMN high_value_threshold TYPE numeric(18, 3);

CREATE TABLE price_lists (
    store      text NOT NULL,
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    sku        text NOT NULL,
    price      numeric(18, 3) NOT NULL CHECK (price >= 0),
    valid_from timestamptz NOT NULL,  -- 0001-01-01 UTC: since always
    valid_to   timestamptz,
    updated_by text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, currency, sku, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
