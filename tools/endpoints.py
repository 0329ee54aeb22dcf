"""Where each service's HTTP is, for the command line and the demo: SHOPKEEPER_<SERVICE>_URL
(e.g. `http://inventory.internal:8002`, a Kubernetes port-forward, a compose host), else
`http://127.0.0.1:<port>` with the service's docs/contract.md port plus SHOPKEEPER_PORT_OFFSET:
where the local stack runs it and where docker-compose.yml publishes it."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import SERVICES, service_port


class ServiceUrls(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_", extra="ignore")

    intake_url: str | None = None
    inventory_url: str | None = None
    fulfillment_url: str | None = None
    logistics_url: str | None = None
    aftersales_url: str | None = None
    analytics_url: str | None = None


def service_url(service: str) -> str:
    """The service's base URL, without a trailing slash. ValueError for an unknown service."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    explicit: str | None = getattr(ServiceUrls(), f"{service}_url")
    if explicit:
        return explicit.rstrip("/")
    return f"http://127.0.0.1:{service_port(service)}"
