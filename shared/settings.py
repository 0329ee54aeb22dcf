"""Settings from environment variables, read only through pydantic-settings (a bad value is an
error naming the variable, at start); with none set, the local stack's defaults serve."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = (
    "intake", "inventory", "fulfillment", "logistics", "aftersales", "analytics", "channels",
)
# Web applications: no Kafka consumer (not in SERVICES, which every consumer-group check walks),
# but their own schema, role and port in the local stack like a service.
WEB_APPS: tuple[str, ...] = ("console",)
DEFAULT_PORTS: dict[str, int] = {
    "intake": 8001, "inventory": 8002, "fulfillment": 8003,
    "logistics": 8004, "aftersales": 8005, "analytics": 8006, "channels": 8007,
    "console": 8000,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # The admin URL: `make up` creates schemas and roles with it, and each service derives its own
    # login from it (its role, on the same host and database) unless SHOPKEEPER_<SERVICE>_DATABASE_URL
    # names one explicitly, as production should.
    database_url: str = "postgresql://postgres:postgres@127.0.0.1:5432/shopkeeper"
    shopkeeper_admin_token: str = "shopkeeper-local-admin-token"  # DEFAULT_ADMIN_TOKEN
    shopkeeper_http_host: str = "127.0.0.1"
    # The services' event loop: uvloop (libuv) spends less CPU per socket read and write than
    # asyncio's own loop (docs/BENCHMARKS.md, fifth round); `asyncio` to rule it out.
    shopkeeper_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # `production` refuses to start with any default credential (check_credentials).
    shopkeeper_env: Literal["development", "production"] = "development"
    # The HTTP guard (shared/http.py): body size and time limits, header deadline, write rate.
    shopkeeper_http_max_body_bytes: int = 1024 * 1024
    shopkeeper_http_body_timeout_seconds: float = 30.0
    shopkeeper_http_header_timeout_seconds: float = 10.0
    shopkeeper_http_writes_per_second: float = 20.0
    shopkeeper_warehouse_mode: Literal["automatic", "manual"] = "automatic"
    shopkeeper_log_level: str = "INFO"
    shopkeeper_topic_partitions: int = 6
    shopkeeper_topic_replication: int = 1
    # A message whose handler fails this many times (not counting transient faults) goes to DLQ.
    shopkeeper_handler_max_attempts: int = 5
    # /readyz fails when the consumer has lag but has made no progress for this long.
    shopkeeper_stall_seconds: float = 60.0
    shopkeeper_outbox_poll_seconds: float = 1.0
    # Published outbox rows are kept this long (for audit and replay), then deleted hourly.
    shopkeeper_outbox_retention_hours: float = 24.0
    # Handled event ids are forgotten after this many days, and only while it exceeds every
    # consumed topic's retention.ms (`make up` sets 7 days): see messaging.prune_inbox_forever.
    shopkeeper_inbox_retention_days: float = 14.0
    # An event's occurred_at ahead of this clock by more than this is clamped to the time received
    # (last-writer-wins on a checked time; docs/contract.md).
    shopkeeper_max_clock_skew_seconds: float = 300.0
    # Messages handled in one transaction and committed together (1: one at a time).
    shopkeeper_batch_size: int = 100
    # Offsets of handled runs are committed to Kafka at most this often (and whenever the
    # consumer is idle, gives partitions up or stops); 0: after every run. A crash re-reads at
    # most this much, which the inbox drops (docs/messaging.md "Offset commits").
    shopkeeper_commit_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    # Shifts every local-stack port (Kafka, Postgres, services, Prometheus) by this much, so that
    # several stacks can run side by side on one machine (e.g. 1000: Kafka 10092, Postgres 6432,
    # intake 9001). Explicit KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are used as given.
    shopkeeper_port_offset: int = 0
    # Channels: the Fernet key(s) sealing platform secrets at rest (comma-separated to rotate:
    # the first seals, all open). Empty: the local stack derives one from the admin token.
    shopkeeper_channels_secret_key: str = ""

    @model_validator(mode="after")
    def _apply_port_offset(self) -> Settings:
        off = self.shopkeeper_port_offset
        if off and "kafka_bootstrap_servers" not in self.model_fields_set:
            self.kafka_bootstrap_servers = f"127.0.0.1:{9092 + off}"
        if off and "database_url" not in self.model_fields_set:
            self.database_url = f"postgresql://postgres:postgres@127.0.0.1:{5432 + off}/shopkeeper"
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()


class ServiceSettings(BaseSettings):
    """One service's own variables, SHOPKEEPER_<SERVICE>_*: `service_settings(name)`. Read on
    every call, not cached: a test or a tool may set them just before."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    database_url: str | None = None
    db_password: str | None = None
    port: int | None = None
    fetch_wait_ms: int | None = None
    batch_size: int | None = Field(default=None, ge=1, le=10_000)


def service_settings(service: str) -> ServiceSettings:
    prefix = f"SHOPKEEPER_{service.upper()}_"
    try:
        return ServiceSettings(_env_prefix=prefix)
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"{prefix}{'_'.join(map(str, e['loc'])).upper()} is invalid: {e['msg']}"
            for e in exc.errors())) from None


def unix_socket_url(url: str, socket_dir: str) -> str:
    """The same login, database and port over the server's Unix socket in `socket_dir`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
    query = f"host={socket_dir}&port={parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def role_name(service: str) -> str:
    return service


def service_database_url(service: str, settings: Settings | None = None) -> str:
    """The login of one service: its own role, rights on its own schema only."""
    explicit = service_settings(service).database_url
    if explicit:
        return explicit
    settings = settings or get_settings()
    parts = urlsplit(settings.database_url)
    # No host: a Unix socket, named by the query (`?host=/dir&port=5432`), as the local stack does.
    host = parts.hostname or ""
    netloc = f"{role_name(service)}:{role_password(service)}@{host}"
    if host and parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def role_password(service: str) -> str:
    """Local-stack password of a service's role; production sets SHOPKEEPER_<SERVICE>_DATABASE_URL."""
    return service_settings(service).db_password or f"{service}-local"


def service_fetch_wait_ms(service: str, default: int) -> int:
    """SHOPKEEPER_<SERVICE>_FETCH_WAIT_MS, else the service's own default (shared.service)."""
    explicit = service_settings(service).fetch_wait_ms
    return default if explicit is None else explicit


def service_batch_size(service: str, default: int) -> int:
    """SHOPKEEPER_<SERVICE>_BATCH_SIZE, else the service's own default (shared.service)."""
    explicit = service_settings(service).batch_size
    return default if explicit is None else explicit


def service_port(service: str) -> int:
    explicit = service_settings(service).port
    if explicit:
        return explicit
    return DEFAULT_PORTS[service] + get_settings().shopkeeper_port_offset


DEFAULT_ADMIN_TOKEN = "shopkeeper-local-admin-token"
DEFAULT_DB_PASSWORDS = ("postgres", "postgres-local")


def check_credentials(service: str, settings: Settings | None = None) -> None:
    """Refuse to start with credentials anyone can guess: never with an empty admin token, and
    with SHOPKEEPER_ENV=production never with a default one (admin token, the service's database
    password, the admin database URL's password). Raises RuntimeError naming what to set."""
    settings = settings or get_settings()
    problems = []
    if not settings.shopkeeper_admin_token.strip():
        problems.append("SHOPKEEPER_ADMIN_TOKEN is empty: set a long random token")
    if settings.shopkeeper_env == "production":
        if settings.shopkeeper_admin_token in (DEFAULT_ADMIN_TOKEN, "change-me"):
            problems.append("SHOPKEEPER_ADMIN_TOKEN is the local default: set a long random token")
        if len(settings.shopkeeper_admin_token) < 24:
            problems.append("SHOPKEEPER_ADMIN_TOKEN is shorter than 24 characters")
        password = urlsplit(service_database_url(service, settings)).password or ""
        if password in (*DEFAULT_DB_PASSWORDS, f"{service}-local"):
            problems.append(f"the {service} database login uses a default password: set"
                            f" SHOPKEEPER_{service.upper()}_DATABASE_URL (or _DB_PASSWORD)")
    if problems:
        raise RuntimeError(f"{service} refuses to start: " + "; ".join(problems))


class ServiceUrls(BaseSettings):
    """SHOPKEEPER_<SERVICE>_URL: where a service's HTTP is, for the CLI, the demo and the console
    (another host, a compose network name, a Kubernetes port-forward)."""

    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_", extra="ignore")

    intake_url: str | None = None
    inventory_url: str | None = None
    fulfillment_url: str | None = None
    logistics_url: str | None = None
    aftersales_url: str | None = None
    analytics_url: str | None = None
    channels_url: str | None = None
    console_url: str | None = None


def service_url(service: str) -> str:
    """The service's base URL, without a trailing slash: SHOPKEEPER_<SERVICE>_URL, else
    `http://127.0.0.1:<port>` (the local stack's and compose's published port). ValueError for
    an unknown service."""
    if service not in DEFAULT_PORTS:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(DEFAULT_PORTS)}")
    explicit: str | None = getattr(ServiceUrls(), f"{service}_url")
    if explicit:
        return explicit.rstrip("/")
    return f"http://127.0.0.1:{service_port(service)}"


def prometheus_port() -> int:
    return 9090 + get_settings().shopkeeper_port_offset
