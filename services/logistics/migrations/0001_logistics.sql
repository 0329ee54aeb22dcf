CREATE TABLE carriers (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    on_time_score numeric(4, 3) NOT NULL DEFAULT 0.900
);

-- Carrier services as data: where they collect, where they deliver, what they refuse, limits,
-- rate card (first 500 g plus 500 g steps, fuel surcharge), volumetric divisor, transit days and
-- the tracking number format.
CREATE TABLE services (
    code               text PRIMARY KEY,
    carrier            text NOT NULL REFERENCES carriers,
    name               text NOT NULL,
    origins            text[] NOT NULL,
    destinations       text[] NOT NULL,
    refused            text[] NOT NULL DEFAULT '{}',
    max_weight_g       int NOT NULL,
    max_side_mm        int NOT NULL,
    transit_min        int NOT NULL,
    transit_max        int NOT NULL,
    first_500g         numeric(10, 2) NOT NULL,
    per_500g           numeric(10, 2) NOT NULL,
    fuel_pct           numeric(5, 2) NOT NULL DEFAULT 0,
    volumetric_divisor int NOT NULL DEFAULT 5000,
    tracking_format    text NOT NULL,
    active             boolean NOT NULL DEFAULT true
);

INSERT INTO carriers VALUES
    ('USPS', 'United States Postal Service', 0.910),
    ('UPS', 'UPS', 0.950),
    ('DHL', 'DHL Express', 0.960),
    ('CHINAPOST', 'China Post', 0.820),
    ('YUN', 'YunExpress', 0.880),
    ('DHLPAKET', 'DHL Paket', 0.930),
    ('DPOST', 'Deutsche Post', 0.900);

INSERT INTO services (code, carrier, name, origins, destinations, refused, max_weight_g,
                      max_side_mm, transit_min, transit_max, first_500g, per_500g, fuel_pct,
                      volumetric_divisor, tracking_format) VALUES
    ('USPS-GA', 'USPS', 'Ground Advantage', '{WH-LA}', '{US}', '{}', 31500, 1000, 2, 5,
     5.50, 1.20, 0, 5000, 'num:9400:18'),
    ('USPS-PMI', 'USPS', 'Priority Mail International', '{WH-LA}',
     '{CA,MX,BR,GB,DE,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}', '{battery,liquid,powder}',
     20000, 1050, 6, 10, 32.00, 3.50, 0, 5000, 's10:CP:US'),
    ('UPS-GND', 'UPS', 'Ground', '{WH-LA}', '{US,CA}', '{}', 30000, 1500, 1, 5,
     8.90, 1.10, 8.5, 5000, 'num:1Z:16'),
    ('UPS-WWX', 'UPS', 'Worldwide Express', '{WH-LA,WH-FRA}',
     '{US,CA,MX,BR,GB,DE,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}', '{}', 30000, 1500, 1, 3,
     28.00, 4.50, 12.0, 5000, 'num:1Z:16'),
    ('DHL-EXP', 'DHL', 'Express Worldwide', '{WH-LA,WH-SZ,WH-FRA}',
     '{US,CA,MX,BR,GB,DE,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}', '{}', 30000, 1200, 1, 4,
     30.00, 4.00, 14.0, 5000, 'num:JD:18'),
    ('CP-EPACKET', 'CHINAPOST', 'ePacket', '{WH-SZ}',
     '{US,CA,MX,BR,GB,DE,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}',
     '{battery,liquid,powder,magnetic}', 2000, 600, 7, 20, 3.20, 1.50, 0, 6000, 's10:LX:CN'),
    ('YUN-STD', 'YUN', 'YunExpress Standard', '{WH-SZ}',
     '{US,CA,MX,BR,GB,DE,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}', '{liquid,powder}',
     20000, 1000, 6, 12, 4.50, 2.00, 0, 6000, 'num:YT:16'),
    ('DHL-PAKET', 'DHLPAKET', 'Paket', '{WH-FRA}', '{DE,FR,ES,IT,NL,PL,GB}', '{}', 31500, 1200,
     1, 4, 6.50, 0.60, 0, 5000, 'num:00340:15'),
    ('DP-WPI', 'DPOST', 'Warenpost International', '{WH-FRA}',
     '{US,CA,MX,BR,GB,FR,ES,IT,NL,PL,AU,JP,KR,SG,MY,TH,PH,ID,VN}', '{battery,liquid,powder}',
     1000, 353, 4, 10, 4.00, 2.20, 0, 5000, 's10:LX:DE');

CREATE SEQUENCE tracking_seq START 10000001;

CREATE TABLE orders (
    order_id       uuid PRIMARY KEY,
    order_key      text NOT NULL,
    store          text,
    external_order_id text,
    status         text NOT NULL CHECK (status IN ('shipped', 'delivered', 'waiting', 'cancelled')),
    parcel_count   int NOT NULL DEFAULT 0,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
    parcel_id       text PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders,
    warehouse       text NOT NULL,
    country         text NOT NULL,
    carrier         text,
    service         text,
    tracking_number text UNIQUE,
    status          text NOT NULL,
    weight_g        int NOT NULL,
    chargeable_g    int,
    cost            numeric(10, 2),
    lines           jsonb NOT NULL,
    trace           jsonb NOT NULL,
    last_event_at   timestamptz,
    shipped_at      timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_order ON shipments (order_id);

CREATE TABLE tracking_events (
    event_id        uuid PRIMARY KEY,
    tracking_number text NOT NULL,
    status          text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    location        text,
    description     text,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tracking_events_number ON tracking_events (tracking_number, occurred_at);
