-- GET /orders?email=|phone=|name=: operators find a customer's orders by what the customer says
-- on the phone. The expressions are domain.normalise_email / normalise_phone's, so a search
-- matches whatever spelling the storefront sent; the name matches case-insensitively from
-- its start.
CREATE INDEX IF NOT EXISTS orders_customer_email ON orders (lower(btrim(payload->'customer'->>'email')))
    WHERE payload->'customer'->>'email' IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_customer_phone
    ON orders (('+' || regexp_replace(payload->'customer'->>'phone', '\D', '', 'g')))
    WHERE payload->'customer'->>'phone' IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_customer_name ON orders (lower(payload->'customer'->>'name') text_pattern_ops)
    WHERE payload->'customer'->>'name' IS NOT NULL;
