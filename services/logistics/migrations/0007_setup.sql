-- Setup by API (docs/logistics.md "Setup"): logistics owns carriers, carrier services, zone
-- charts and rate cards (shared/setup.py), and keeps a copy of inventory's warehouses.

-- Logistics' copy of inventory's warehouses gains what it needs to promise a ship date: the
-- warehouse's time zone, the local cut-off time for same-day dispatch, its working days and
-- whether it is active. Defaults are today's behaviour; the three seeded warehouses get their
-- own time zones (their seeded addresses are unchanged).
ALTER TABLE warehouses
    ADD COLUMN timezone     text NOT NULL DEFAULT 'UTC',
    ADD COLUMN cutoff       text NOT NULL DEFAULT '15:00'
        CHECK (cutoff ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    ADD COLUMN working_days text[] NOT NULL DEFAULT '{mon,tue,wed,thu,fri}',
    ADD COLUMN active       boolean NOT NULL DEFAULT true;
UPDATE warehouses SET timezone = 'America/Los_Angeles' WHERE code = 'WH-LA';
UPDATE warehouses SET timezone = 'Asia/Shanghai' WHERE code = 'WH-SZ';
UPDATE warehouses SET timezone = 'Europe/Berlin' WHERE code = 'WH-FRA';

-- A service's destination zones (service_zones) follow the zone charts of its origins
-- (zone_chart, for the countries it serves) unless its rate card gives its own: false for every
-- seeded service, whose service_zones were made from the charts in 0002.
ALTER TABLE services ADD COLUMN own_zones boolean NOT NULL DEFAULT false;
