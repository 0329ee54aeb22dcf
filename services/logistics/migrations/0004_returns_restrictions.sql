-- A merged parcel carries several orders' goods: each linked order's own lines, so a lost or
-- returned parcel tells aftersales what of *that* order it held (NULL for links made before).
ALTER TABLE parcel_orders ADD COLUMN lines jsonb;

-- What a destination's import rules forbid, whatever the carrier: goods with `attribute` are
-- refused by every service to `country` (on top of each service's own `refused`). Operators
-- change it over HTTP (PUT/DELETE /restrictions/{country}/{attribute}), which publishes coverage
-- again so intake re-reviews its restricted-goods holds.
CREATE TABLE destination_restrictions (
    country    text NOT NULL,
    attribute  text NOT NULL,
    note       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (country, attribute)
);
-- Australia's biosecurity rules: powdered food (whey and other dairy-based protein powders)
-- needs an import permit that none of our carrier accounts holds, so no service takes powder
-- goods there.
INSERT INTO destination_restrictions (country, attribute, note) VALUES
    ('AU', 'powder', 'biosecurity import permit needed for powdered food (dairy-based powders)');
