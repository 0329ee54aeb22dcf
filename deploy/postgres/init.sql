-- Shopkeeper's database on a fresh Postgres container (docker-entrypoint-initdb.d runs this once,
-- on an empty data volume). It mirrors bootstrap_database() in stack/__main__.py: one database,
-- and per service one schema and one login role with rights on that schema alone.
-- Passwords: SHOPKEEPER_<SERVICE>_DB_PASSWORD from the container's environment, else
-- "<service>-local" like role_password() in shared/settings.py. Needs psql 15+ (\getenv).
\set ON_ERROR_STOP on

CREATE DATABASE shopkeeper;
\connect shopkeeper

REVOKE ALL ON DATABASE shopkeeper FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- intake
\unset pw
\getenv pw SHOPKEEPER_INTAKE_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'intake-local'
\endif
CREATE ROLE intake LOGIN PASSWORD :'pw';
CREATE SCHEMA intake AUTHORIZATION intake;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO intake;
ALTER ROLE intake SET search_path = intake;

-- inventory
\unset pw
\getenv pw SHOPKEEPER_INVENTORY_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'inventory-local'
\endif
CREATE ROLE inventory LOGIN PASSWORD :'pw';
CREATE SCHEMA inventory AUTHORIZATION inventory;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO inventory;
ALTER ROLE inventory SET search_path = inventory;

-- fulfillment
\unset pw
\getenv pw SHOPKEEPER_FULFILLMENT_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'fulfillment-local'
\endif
CREATE ROLE fulfillment LOGIN PASSWORD :'pw';
CREATE SCHEMA fulfillment AUTHORIZATION fulfillment;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO fulfillment;
ALTER ROLE fulfillment SET search_path = fulfillment;

-- logistics
\unset pw
\getenv pw SHOPKEEPER_LOGISTICS_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'logistics-local'
\endif
CREATE ROLE logistics LOGIN PASSWORD :'pw';
CREATE SCHEMA logistics AUTHORIZATION logistics;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO logistics;
ALTER ROLE logistics SET search_path = logistics;

-- aftersales
\unset pw
\getenv pw SHOPKEEPER_AFTERSALES_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'aftersales-local'
\endif
CREATE ROLE aftersales LOGIN PASSWORD :'pw';
CREATE SCHEMA aftersales AUTHORIZATION aftersales;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO aftersales;
ALTER ROLE aftersales SET search_path = aftersales;

-- analytics
\unset pw
\getenv pw SHOPKEEPER_ANALYTICS_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'analytics-local'
\endif
CREATE ROLE analytics LOGIN PASSWORD :'pw';
CREATE SCHEMA analytics AUTHORIZATION analytics;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO analytics;
ALTER ROLE analytics SET search_path = analytics;

-- channels
\unset pw
\getenv pw SHOPKEEPER_CHANNELS_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'channels-local'
\endif
CREATE ROLE channels LOGIN PASSWORD :'pw';
CREATE SCHEMA channels AUTHORIZATION channels;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO channels;
ALTER ROLE channels SET search_path = channels;

-- console (the web console: users, sessions, audit; no Kafka consumer)
\unset pw
\getenv pw SHOPKEEPER_CONSOLE_DB_PASSWORD
\if :{?pw}
\else
  \set pw 'console-local'
\endif
CREATE ROLE console LOGIN PASSWORD :'pw';
CREATE SCHEMA console AUTHORIZATION console;
GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO console;
ALTER ROLE console SET search_path = console;

\unset pw
