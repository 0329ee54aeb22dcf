-- Issue 22, point 1: a promotion's amounts name their currency. `min_spend` and a fixed
-- `value` are in `currency`; an order in another currency compares with them converted at the
-- newest known rate (docs/review-rules.md "Currencies"). USD by default: the seed rows
-- (WELCOME10, SAVE5) and every promotion created before keep today's meaning for USD orders.
-- The amounts take three decimals so that a KWD or BHD promotion can be exact; the values kept
-- are unchanged (5.00 is 5.000).
ALTER TABLE promotions
    ADD COLUMN currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    ALTER COLUMN value TYPE numeric(14, 3),
    ALTER COLUMN min_spend TYPE numeric(14, 3);
