"""Settings are read only through pydantic-settings: one place per group of variables, a bad
value refused with the variable's name, the same defaults as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.analytics.jobs import AnalyticsSettings, analytics_settings
from services.fulfillment.warehouse import Config, FulfillmentSettings, config
from services.inventory.tasks import InventorySettings
from services.logistics.handlers import WatchdogSettings
from shared.settings import role_password, service_database_url, service_fetch_wait_ms, service_port

ROOT = Path(__file__).resolve().parents[2]


def test_no_service_or_shared_module_reads_the_environment_by_hand() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bos\.(environ|getenv)\b", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_per_service_variables_keep_their_defaults_and_take_a_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOPKEEPER_INVENTORY_PORT", "SHOPKEEPER_INVENTORY_DB_PASSWORD",
                 "SHOPKEEPER_INVENTORY_DATABASE_URL", "SHOPKEEPER_ANALYTICS_FETCH_WAIT_MS",
                 "SHOPKEEPER_PORT_OFFSET"):
        monkeypatch.delenv(name, raising=False)
    assert role_password("inventory") == "inventory-local"
    assert service_fetch_wait_ms("analytics", 250) == 250
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_PORT", "18002")
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_DB_PASSWORD", "s3cret")
    monkeypatch.setenv("SHOPKEEPER_ANALYTICS_FETCH_WAIT_MS", "0")
    assert service_port("inventory") == 18002
    assert role_password("inventory") == "s3cret"
    assert service_fetch_wait_ms("analytics", 250) == 0
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_DATABASE_URL", "postgresql://i:p@db:5432/s")
    assert service_database_url("inventory") == "postgresql://i:p@db:5432/s"
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_PORT", "")  # empty: as if unset
    assert service_port("inventory") != 0


def test_a_bad_value_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPKEEPER_LOGISTICS_PORT", "eighty")
    with pytest.raises(ValueError, match="SHOPKEEPER_LOGISTICS_PORT is invalid"):
        service_port("logistics")
    monkeypatch.setenv("SHOPKEEPER_FULFILLMENT_WAVE_SIZE", "a dozen")
    with pytest.raises(ValueError, match="wave_size"):
        config()


def test_fulfillment_config_reads_its_variables_with_the_dataclass_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Config.__dataclass_fields__:
        monkeypatch.delenv(f"SHOPKEEPER_FULFILLMENT_{field.upper()}", raising=False)
    assert config() == Config()
    assert set(Config.__dataclass_fields__) <= set(FulfillmentSettings.model_fields)
    monkeypatch.setenv("SHOPKEEPER_FULFILLMENT_WAVE_SIZE", "1")
    monkeypatch.setenv("SHOPKEEPER_FULFILLMENT_MERGE", "off")
    monkeypatch.setenv("SHOPKEEPER_FULFILLMENT_SCAN_ERROR_RATE", "0.5")
    monkeypatch.setenv("SHOPKEEPER_FULFILLMENT_SEED", "7")
    cfg = config()
    assert (cfg.wave_size, cfg.merge, cfg.scan_error_rate) == (1, False, 0.5)
    assert FulfillmentSettings().seed == "7"


def test_inventory_and_logistics_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPKEEPER_INVENTORY_TICK_SECONDS", raising=False)
    monkeypatch.delenv("SHOPKEEPER_LOGISTICS_WATCHDOG_SECONDS", raising=False)
    assert InventorySettings().tick_seconds == 5.0 and InventorySettings().lead_time_days == 14
    assert WatchdogSettings().watchdog_seconds == 600.0
    monkeypatch.setenv("SHOPKEEPER_LOGISTICS_WATCHDOG_SECONDS", "0")
    with pytest.raises(ValueError, match="watchdog_seconds"):
        WatchdogSettings()


def test_analytics_settings_keep_their_defaults_take_a_value_and_name_a_bad_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for field in AnalyticsSettings.model_fields:
        monkeypatch.delenv(f"SHOPKEEPER_ANALYTICS_{field.upper()}", raising=False)
    analytics_settings.cache_clear()
    assert analytics_settings().ship_sla_hours == 48.0
    assert analytics_settings().facts_retention_months == 24
    monkeypatch.setenv("SHOPKEEPER_ANALYTICS_SHIP_SLA_HOURS", "24")
    analytics_settings.cache_clear()
    assert analytics_settings().ship_sla_hours == 24.0
    monkeypatch.setenv("SHOPKEEPER_ANALYTICS_FACTS_RETENTION_MONTHS", "two years")
    analytics_settings.cache_clear()
    with pytest.raises(ValueError, match="SHOPKEEPER_ANALYTICS_FACTS_RETENTION_MONTHS is invalid"):
        analytics_settings()
    analytics_settings.cache_clear()
