-- Warehouses become setup data (docs/setup.md, docs/inventory.md "Setup"): the address (labels and
-- the copy logistics keeps), the local time zone, the daily cut-off and the working days, and an
-- `active` flag (a warehouse is never deleted, history refers to it; an inactive one is not
-- allocated from). The defaults are today's behaviour; the three seeded warehouses get the
-- addresses logistics already prints (services/logistics/migrations/0002_zones_customs_labels.sql).
ALTER TABLE warehouses
    ADD COLUMN line1        text NOT NULL DEFAULT '',
    ADD COLUMN line2        text,
    ADD COLUMN city         text NOT NULL DEFAULT '',
    ADD COLUMN region       text,
    ADD COLUMN postal_code  text NOT NULL DEFAULT '',
    ADD COLUMN timezone     text NOT NULL DEFAULT 'UTC',
    -- Orders reserved after this local time ship the next working day.
    ADD COLUMN cutoff       time NOT NULL DEFAULT '15:00',
    ADD COLUMN working_days text[] NOT NULL DEFAULT '{mon,tue,wed,thu,fri}',
    ADD COLUMN active       boolean NOT NULL DEFAULT true;

UPDATE warehouses w SET line1 = v.line1, city = v.city, region = v.region,
                        postal_code = v.postal_code, timezone = v.timezone
FROM (VALUES
    ('WH-LA', '2400 E 8th St', 'Los Angeles', 'CA', '90021', 'America/Los_Angeles'),
    ('WH-SZ', '8 Fuyong Industrial Rd, Bao''an', 'Shenzhen', 'Guangdong', '518103',
     'Asia/Shanghai'),
    ('WH-FRA', 'Cargo City Sued 557', 'Frankfurt am Main', 'HE', '60549', 'Europe/Berlin')
) v(code, line1, city, region, postal_code, timezone)
WHERE w.code = v.code;
