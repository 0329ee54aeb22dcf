-- Catalogue depth: warehouses (origin country and the sender's address on labels), destination
-- zones per service and origin, rate cards and transit days per zone, remote areas, stall limits;
-- carrier scores from delivery history; product customs data; label, customs and dispatch state
-- of each parcel.

CREATE TABLE warehouses (
    code        text PRIMARY KEY,
    country     text NOT NULL,
    name        text NOT NULL,
    line1       text NOT NULL,
    city        text NOT NULL,
    region      text,
    postal_code text NOT NULL
);
INSERT INTO warehouses VALUES
    ('WH-LA', 'US', 'Shopkeeper Los Angeles DC', '2400 E 8th St', 'Los Angeles', 'CA', '90021'),
    ('WH-SZ', 'CN', 'Shopkeeper Shenzhen DC', '8 Fuyong Industrial Rd, Bao''an', 'Shenzhen',
     'Guangdong', '518103'),
    ('WH-FRA', 'DE', 'Shopkeeper Frankfurt DC', 'Cargo City Sued 557', 'Frankfurt am Main',
     'HE', '60549');

ALTER TABLE services
    ADD COLUMN remote_surcharge numeric(10, 2) NOT NULL DEFAULT 0,
    ADD COLUMN stall_days       int NOT NULL DEFAULT 10,
    ADD COLUMN currency         text NOT NULL DEFAULT 'USD';

-- Express carriers charge a flat remote-area fee; posts do not. Stall limits: express services
-- scan at every hub, so a few silent days already mean trouble; postal ones go quiet for a week
-- in a sorting centre or at customs.
UPDATE services SET remote_surcharge = 32.00, stall_days = 4 WHERE code IN ('UPS-WWX', 'DHL-EXP');
UPDATE services SET remote_surcharge = 18.50, stall_days = 5 WHERE code = 'UPS-GND';
UPDATE services SET stall_days = 5 WHERE code IN ('USPS-GA', 'DHL-PAKET');
UPDATE services SET stall_days = 12 WHERE code IN ('USPS-PMI', 'YUN-STD', 'DP-WPI');
UPDATE services SET stall_days = 15 WHERE code = 'CP-EPACKET';

-- The zone chart of each origin: D domestic, then 1 (nearest) to 5 (farthest).
CREATE TABLE zone_chart (
    origin  text NOT NULL REFERENCES warehouses,
    country text NOT NULL,
    zone    text NOT NULL,
    PRIMARY KEY (origin, country)
);
INSERT INTO zone_chart (origin, country, zone)
SELECT 'WH-LA', c, z FROM (VALUES ('US', 'D'), ('CA', '1'), ('MX', '1'), ('GB', '2'), ('DE', '2'),
    ('FR', '2'), ('ES', '2'), ('IT', '2'), ('NL', '2'), ('PL', '2'), ('JP', '3'), ('KR', '3'),
    ('AU', '3'), ('SG', '4'), ('MY', '4'), ('TH', '4'), ('PH', '4'), ('ID', '4'), ('VN', '4'),
    ('BR', '5')) v(c, z)
UNION ALL
SELECT 'WH-SZ', c, z FROM (VALUES ('JP', '1'), ('KR', '1'), ('SG', '1'), ('MY', '1'), ('TH', '1'),
    ('PH', '1'), ('ID', '1'), ('VN', '1'), ('US', '2'), ('CA', '2'), ('AU', '2'), ('GB', '3'),
    ('DE', '3'), ('FR', '3'), ('ES', '3'), ('IT', '3'), ('NL', '3'), ('PL', '3'), ('MX', '4'),
    ('BR', '5')) v(c, z)
UNION ALL
SELECT 'WH-FRA', c, z FROM (VALUES ('DE', 'D'), ('FR', '1'), ('ES', '1'), ('IT', '1'), ('NL', '1'),
    ('PL', '1'), ('GB', '2'), ('US', '3'), ('CA', '3'), ('MX', '4'), ('JP', '4'), ('KR', '4'),
    ('AU', '4'), ('SG', '4'), ('MY', '4'), ('TH', '4'), ('PH', '4'), ('ID', '4'), ('VN', '4'),
    ('BR', '5')) v(c, z);

-- Destination zones of each service from each origin it collects at.
CREATE TABLE service_zones (
    service text NOT NULL REFERENCES services,
    origin  text NOT NULL REFERENCES warehouses,
    country text NOT NULL,
    zone    text NOT NULL,
    PRIMARY KEY (service, origin, country)
);

-- Rate card and transit days per service and zone.
CREATE TABLE zone_rates (
    service     text NOT NULL REFERENCES services,
    zone        text NOT NULL,
    first_500g  numeric(10, 2) NOT NULL,
    per_500g    numeric(10, 2) NOT NULL,
    transit_min int NOT NULL,
    transit_max int NOT NULL CHECK (transit_max >= transit_min),
    PRIMARY KEY (service, zone)
);

INSERT INTO service_zones (service, origin, country, zone)
SELECT s.code, z.origin, z.country, z.zone
FROM services s JOIN zone_chart z ON z.origin = ANY (s.origins) AND z.country = ANY (s.destinations);

-- The services' own cards are their middle zone (2); nearer zones are cheaper and quicker,
-- farther ones dearer and slower. Domestic zones get the cheapest rates and 1-3 days.
INSERT INTO zone_rates (service, zone, first_500g, per_500g, transit_min, transit_max)
SELECT s.code, f.zone, round(s.first_500g * f.factor, 2), round(s.per_500g * f.factor, 2),
       CASE WHEN f.zone = 'D' THEN LEAST(s.transit_min, 2) ELSE GREATEST(1, s.transit_min + f.days) END,
       CASE WHEN f.zone = 'D' THEN LEAST(s.transit_max, 3)
            ELSE GREATEST(GREATEST(1, s.transit_min + f.days), s.transit_max + f.days) END
FROM services s
JOIN (VALUES ('D', 0.70, 0), ('1', 0.85, -1), ('2', 1.00, 0), ('3', 1.10, 0), ('4', 1.20, 1),
             ('5', 1.35, 2)) f(zone, factor, days)
  ON f.zone IN (SELECT zone FROM service_zones sz WHERE sz.service = s.code);

-- Postal-code prefixes (upper case, no spaces) each carrier calls remote: Alaska, Hawaii and
-- Puerto Rico; the Scottish Highlands and islands; German North Sea islands; Corsica; the
-- Canary and Balearic islands; Canada's north; Australia's Northern Territory and far north-west;
-- Brazil's Amazon states.
CREATE TABLE remote_areas (
    carrier text NOT NULL REFERENCES carriers,
    country text NOT NULL,
    prefix  text NOT NULL,
    PRIMARY KEY (carrier, country, prefix)
);
INSERT INTO remote_areas (carrier, country, prefix)
SELECT c, country, prefix FROM (VALUES ('UPS'), ('DHL')) carriers(c)
CROSS JOIN (VALUES ('US', '995'), ('US', '996'), ('US', '997'), ('US', '998'), ('US', '999'),
    ('US', '967'), ('US', '968'), ('US', '006'), ('US', '007'), ('US', '009'),
    ('GB', 'IV'), ('GB', 'HS'), ('GB', 'ZE'), ('GB', 'KW'), ('GB', 'PA2'), ('GB', 'PA3'),
    ('GB', 'PA4'), ('GB', 'PA6'), ('GB', 'PA7'),
    ('DE', '27498'), ('DE', '2598'), ('DE', '2599'), ('DE', '26486'), ('DE', '26548'),
    ('FR', '20'), ('ES', '35'), ('ES', '38'), ('ES', '07'),
    ('CA', 'X0'), ('CA', 'X1'), ('CA', 'Y'), ('AU', '08'), ('AU', '67'), ('AU', '48'),
    ('BR', '69'), ('BR', '68')) areas(country, prefix);

-- On-time history per service and destination zone (delivered parcels, and how many within the
-- zone's maximum transit days), and scores analytics computed over everything it saw.
CREATE TABLE carrier_scores (
    service    text NOT NULL,
    zone       text NOT NULL,
    source     text NOT NULL CHECK (source IN ('history', 'analytics')),
    delivered  int NOT NULL DEFAULT 0,
    on_time    int NOT NULL DEFAULT 0,
    rate       numeric(4, 3),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, zone, source)
);

-- What logistics keeps of `catalog.products`: customs data and the description for declarations.
CREATE TABLE products (
    sku            text PRIMARY KEY,
    name           text NOT NULL,
    hs_code        text,
    origin_country text,
    weight_g       int NOT NULL,
    occurred_at    timestamptz NOT NULL
);

ALTER TABLE orders ADD COLUMN snapshot jsonb;

ALTER TABLE shipments
    ADD COLUMN zone              text,
    ADD COLUMN transit_max       int,
    ADD COLUMN cost_currency     text NOT NULL DEFAULT 'USD',
    ADD COLUMN declared_value    numeric(12, 2),
    ADD COLUMN customs           jsonb,
    ADD COLUMN hold_reasons      jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN label_weight_g    int,
    ADD COLUMN measured_weight_g int,
    -- The last scan time the watchdog called stalled, so each silence is flagged once.
    ADD COLUMN stalled_for       timestamptz,
    ADD COLUMN on_time           boolean;
CREATE INDEX shipments_held ON shipments (order_id) WHERE status = 'held';
