-- Exchange rates every service that compares money across currencies reads (shared/money.py),
-- learnt from `fx.rates`. One row per pair; the newest `as_of` wins.
CREATE TABLE IF NOT EXISTS fx_rates (
    base       text NOT NULL,
    quote      text NOT NULL,
    rate       numeric NOT NULL CHECK (rate > 0),
    as_of      timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (base, quote)
);
