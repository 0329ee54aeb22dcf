-- A store's after-sales amounts (refund-only and replacement thresholds, return shipping) are in
-- the policy's currency; requests on orders in another currency convert them (fx.rates).
ALTER TABLE policies
    ADD COLUMN currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    ALTER COLUMN refund_without_return_below TYPE numeric(18, 3),
    ALTER COLUMN return_shipping_cost TYPE numeric(18, 3),
    ALTER COLUMN replacement_without_review_below TYPE numeric(18, 3);
