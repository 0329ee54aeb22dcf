"""docker-compose.yml, the Dockerfile and deploy/ checked against the code.

No Docker engine runs here, so these read the files: the services compose starts are the ones in
shared.settings, with the modules, ports, variables and database roles the code uses; Prometheus,
its alert rules and the Grafana dashboard name only metrics that shared/metrics.py exports.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from services.console.config import ConsoleSettings
from shared.settings import (
    DEFAULT_PORTS,
    SERVICES,
    WEB_APPS,
    Settings,
    role_name,
    role_password,
    service_database_url,
    unix_socket_url,
)

ROOT = Path(__file__).resolve().parents[2]
HA_BROKERS = ("kafka", "kafka-2", "kafka-3")  # broker 1 is `kafka`, alone or in the cluster
PROMETHEUS_SERIES = {"up"}  # series Prometheus makes itself, not the services


# --- reading the files ------------------------------------------------------------------------
@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def shopkeeper_services() -> dict[str, dict[str, Any]]:
    """Every compose service run from the project's image (built from the Dockerfile)."""
    return {n: s for n, s in compose()["services"].items() if "build" in s}


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """A compose value as it is with the variables of `env` set (none by default):
    `${X:-default}` becomes X's value, else `default`."""
    return _VAR.sub(lambda m: (env or {}).get(m["name"]) or m["default"] or "", str(value))


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def environment(svc: dict[str, Any], *, raw: bool = False,
                with_vars: dict[str, str] | None = None) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) if raw else interpolate(v, with_vars) for k, v in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    assert isinstance(cmd, list), "commands are written in exec form (a list)"
    return [interpolate(part) for part in cmd]


def published_ports(svc: dict[str, Any], with_vars: dict[str, str] | None = None
                    ) -> list[tuple[str, str, int]]:
    """(host ip, host port, container port) of every `ports` entry; host port "" if Docker picks."""
    out = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), str(entry.get("published", "")), int(entry["target"])))
            continue
        parts = interpolate(str(entry), with_vars).split("/")[0].split(":")
        container = int(parts[-1])
        host = parts[-2] if len(parts) >= 2 else ""
        ip = ":".join(parts[:-2])
        out.append((ip, host, container))
    return out


def mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of every bind mount (named volumes left out)."""
    out = {}
    for entry in svc.get("volumes") or []:
        source, target = (entry["source"], entry["target"]) if isinstance(entry, dict) else (
            str(entry).split(":")[0], str(entry).split(":")[1])
        if source.startswith((".", "/")):
            out[target] = (ROOT / source).resolve()
    return out


def healthcheck_text(svc: dict[str, Any]) -> str:
    test = svc.get("healthcheck", {}).get("test")
    assert test, "no healthcheck"
    return " ".join(test) if isinstance(test, list) else str(test)


def exported_metrics() -> set[str]:
    """The series names the code exposes (shared/metrics.py and the services' own business
    metrics), parsed from the files (prometheus_client naming)."""
    files = [ROOT / "shared" / "metrics.py", *sorted((ROOT / "services").glob("*/*.py"))]
    defs: list[tuple[str, str]] = []
    for path in files:
        text = path.read_text()
        # Business metrics are TransactionalCounter/Histogram (shared/metrics.py): the same series.
        kinds = r"(?:Transactional)?(Counter|Gauge|Histogram|Summary)"
        found = re.findall(r"^[A-Z_]+ = " + kinds + r"\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", text,
                           re.M)
        if path.name == "metrics.py":  # elsewhere Counter( may be collections.Counter
            assert len(found) == len(re.findall(r"^[A-Z_]+ = " + kinds + r"\(", text, re.M)), (
                f"a metric in {path} is not defined with a literal name")
        defs += found
    names: set[str] = set()
    for kind, name in defs:
        if kind == "Counter":
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "Gauge":
            names.add(name)
        elif kind == "Histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names |= {f"{name}_sum", f"{name}_count", f"{name}_created"}
    return names


_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                 "and", "or", "unless", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                        # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    tokens = re.findall(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", e)
    return {t for t in tokens if t.lower() not in _PROMQL_WORDS}


@cache
def dashboard() -> dict[str, Any]:
    return json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "shopkeeper.json").read_text())


def dashboard_queries() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard()["panels"])
    return found


# --- the services -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_its_own_module_from_the_one_project_image(name: str) -> None:
    svc = service(name)
    assert command(svc) == ["python", "-m", f"services.{name}"]
    assert (ROOT / "services" / name / "__main__.py").is_file()
    images = {(str(s["build"]), s.get("image")) for s in shopkeeper_services().values()}
    assert images == {(".", "shopkeeper:${SHOPKEEPER_IMAGE_TAG:-local}")}, "one image for every service"


def test_compose_sets_only_variables_the_code_reads() -> None:
    prefix = Settings.model_config.get("env_prefix") or ""
    known = {f"{prefix}{field}".upper() for field in Settings.model_fields}
    for name in (*SERVICES, *WEB_APPS):  # service_database_url(), service_port(), role_password()
        known |= {f"SHOPKEEPER_{name.upper()}_{suffix}" for suffix in ("DATABASE_URL", "PORT", "DB_PASSWORD")}
    # The console's own settings, and where it reaches each service (services/console/upstream.py)
    known |= {f"SHOPKEEPER_CONSOLE_{field}".upper() for field in ConsoleSettings.model_fields}
    known |= {f"SHOPKEEPER_{name.upper()}_URL" for name in SERVICES}
    for compose_name, svc in shopkeeper_services().items():
        unknown = set(environment(svc)) - known
        assert not unknown, f"{compose_name} sets variables no code reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_logs_in_to_postgres_as_its_own_role(name: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"SHOPKEEPER_{name.upper()}_DB_PASSWORD", raising=False)
    env = environment(service(name))
    url = urlsplit(env[f"SHOPKEEPER_{name.upper()}_DATABASE_URL"])
    assert (url.username, url.password) == (role_name(name), role_password(name))
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/shopkeeper")
    others = {k for k in env if k.endswith("_DATABASE_URL")} - {f"SHOPKEEPER_{name.upper()}_DATABASE_URL"}
    assert not others, f"{name} must not get another login: {sorted(others)}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_listens_on_all_interfaces_and_reaches_kafka_on_the_network(name: str) -> None:
    env = environment(service(name))
    raw = environment(service(name), raw=True)
    assert env["SHOPKEEPER_HTTP_HOST"] == "0.0.0.0"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert raw["SHOPKEEPER_ADMIN_TOKEN"] == "${SHOPKEEPER_ADMIN_TOKEN:-change-me}"
    if name == "fulfillment":
        assert env["SHOPKEEPER_WAREHOUSE_MODE"] in ("automatic", "manual")


@pytest.mark.parametrize("name", SERVICES)
def test_container_port_and_healthcheck_are_the_services_contract_port(name: str) -> None:
    svc, port = service(name), DEFAULT_PORTS[name]
    assert [str(p) for p in svc.get("expose", [])] == [str(port)]
    assert f"127.0.0.1:{port}/" in healthcheck_text(svc)
    assert environment(svc).get(f"SHOPKEEPER_{name.upper()}_PORT", str(port)) == str(port)
    assert all(container == port for _, _, container in published_ports(svc))


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_published_on_its_port_for_operators_and_scales_with_a_port_range(
        name: str) -> None:
    """The CLI's default URL (tools/endpoints.py) is 127.0.0.1:<port>, so it works against
    compose as against the local stack; `<SERVICE>_HOST_PORT=a-b` gives each replica a port."""
    svc, port = service(name), DEFAULT_PORTS[name]
    assert "container_name" not in svc, "a fixed container name breaks --scale"
    assert published_ports(svc) == [("127.0.0.1", str(port), port)]
    scaled = published_ports(svc, {f"{name.upper()}_HOST_PORT": "18000-18002"})
    assert scaled == [("127.0.0.1", "18000-18002", port)]


@pytest.mark.parametrize("name", SERVICES)
def test_services_start_after_postgres_is_healthy_and_topics_exist(name: str) -> None:
    deps = service(name)["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["kafka-init"]["condition"] == "service_completed_successfully"


# --- Kafka --------------------------------------------------------------------------------------
def test_kafka_init_creates_the_topics_with_the_stack_command() -> None:
    init = service("kafka-init")
    cmd = command(init)
    assert cmd[:4] == ["python", "-m", "stack", "topics"]
    args = dict(zip(cmd[4::2], cmd[5::2], strict=True))
    assert args == {"--bootstrap": "kafka:9092", "--replication": "1"}
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    usage = subprocess.run([sys.executable, "-m", "stack", "topics", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--bootstrap" in usage and "--replication" in usage


def test_single_kafka_broker_serves_the_network_and_the_host_without_auto_created_topics() -> None:
    kafka = service("kafka")
    env = environment(kafka)
    assert kafka["image"] == "apache/kafka:4.1.1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://127.0.0.1:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    host_listener = int(re.search(r"HOST://:(\d+)", env["KAFKA_LISTENERS"])[1])  # type: ignore[index]
    assert published_ports(kafka) == [("127.0.0.1", "9092", host_listener)]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert int(env["KAFKA_NUM_PARTITIONS"]) == Settings.model_fields["shopkeeper_topic_partitions"].default
    assert "kafka-broker-api-versions.sh" in healthcheck_text(kafka)


def test_ha_profile_runs_three_brokers_with_replication_three_and_min_isr_two() -> None:
    ha = env_file(ROOT / "deploy" / "compose" / "ha.env")
    assert ha["COMPOSE_PROFILES"] == "ha"
    envs = {name: environment(service(name), with_vars=ha) for name in HA_BROKERS}
    for name, env in envs.items():
        assert service(name).get("profiles", []) == ([] if name == "kafka" else ["ha"])
        assert service(name)["image"] == "apache/kafka:4.1.1"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert f"INTERNAL://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert healthcheck_text(service(name))
    assert sorted(env["KAFKA_NODE_ID"] for env in envs.values()) == ["1", "2", "3"]
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    # No stray standalone broker: every Kafka in the file is one of the three, and host port 9092
    # reaches broker 1 of the cluster, which advertises the others' host ports.
    kafkas = {n for n, s in compose()["services"].items() if "kafka" in str(s.get("image", ""))}
    assert kafkas == set(HA_BROKERS)
    host = {name: published_ports(service(name)) for name in HA_BROKERS}
    assert host["kafka"] == [("127.0.0.1", "9092", 19092)]
    ports = [p for name in HA_BROKERS for _, p, _ in host[name]]
    assert len(ports) == len(set(ports)), "brokers must not share a host port"
    for name in HA_BROKERS:
        (_, port, _), = host[name]
        assert f"HOST://127.0.0.1:{port}" in envs[name]["KAFKA_ADVERTISED_LISTENERS"]
    # The services and kafka-init reach all three; topics get replication 3.
    assert ha["KAFKA_BROKERS"] == ",".join(f"{n}:9092" for n in HA_BROKERS)
    assert environment(service("intake"), with_vars=ha)["KAFKA_BOOTSTRAP_SERVERS"] == ha["KAFKA_BROKERS"]
    init = [interpolate(part, ha) for part in service("kafka-init")["command"]]
    assert init[init.index("--replication") + 1] == "3"
    deps = service("kafka-init")["depends_on"]
    assert deps["kafka"] == {"condition": "service_healthy"}
    for name in HA_BROKERS[1:]:  # waited for with the ha profile, ignored without it
        assert deps[name] == {"condition": "service_healthy", "required": False}


def test_single_broker_mode_keeps_replication_one() -> None:
    env = environment(service("kafka"))
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == env["KAFKA_MIN_INSYNC_REPLICAS"] == "1"


# --- the compose-spec schema ------------------------------------------------------------------
COMPOSE_SCHEMA = ROOT / "deploy" / "compose" / "compose-spec.json"
COMPOSE_SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"


def compose_schema() -> dict[str, Any]:
    """The vendored schema (deploy/compose/README.md) with the two later additions of the
    specification that docker-compose.yml uses: top-level `name`, `depends_on.*.required`."""
    raw = COMPOSE_SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == COMPOSE_SCHEMA_SHA256, "the vendored schema changed"
    schema: dict[str, Any] = json.loads(raw)
    schema["properties"]["name"] = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    (_, by_name) = schema["definitions"]["service"]["properties"]["depends_on"]["oneOf"]
    (condition,) = by_name["patternProperties"].values()
    condition["properties"]["required"] = {"type": "boolean"}
    return schema


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    validator = jsonschema.Draft201909Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelt_key() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["intake"]["healthchek"] = broken["services"]["intake"].pop("healthcheck")
    broken["services"]["kafka-init"]["depends_on"]["kafka"]["condition"] = "service_ready"
    messages = [e.message for e in jsonschema.Draft201909Validator(compose_schema()).iter_errors(broken)]
    assert any("healthchek" in m for m in messages)
    assert any("kafka-init" in m or "service_ready" in m or "not valid" in m for m in messages)


# --- Postgres -----------------------------------------------------------------------------------
def init_sql() -> str:
    return (ROOT / "deploy" / "postgres" / "init.sql").read_text()


def test_postgres_runs_init_sql_on_first_start_and_is_checked_over_tcp() -> None:
    pg = service("postgres")
    assert pg["image"] == "postgres:15"
    initdb = [host for target, host in mounts(pg).items()
              if target.startswith("/docker-entrypoint-initdb.d/")]
    assert initdb == [ROOT / "deploy" / "postgres" / "init.sql"]
    assert initdb[0].is_file()
    assert "pg_isready" in healthcheck_text(pg) and "-h 127.0.0.1" in healthcheck_text(pg)


@pytest.mark.parametrize("name", (*SERVICES, *WEB_APPS))
def test_init_sql_creates_a_login_role_and_an_owned_schema_for_every_service(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sql = init_sql()
    role = role_name(name)
    assert re.search(rf"^CREATE ROLE {role} LOGIN PASSWORD :'pw';$", sql, re.M)
    assert re.search(rf"^CREATE SCHEMA {name} AUTHORIZATION {role};$", sql, re.M)
    assert re.search(rf"^ALTER ROLE {role} SET search_path = {name};$", sql, re.M)
    assert re.search(rf"^GRANT CONNECT, TEMPORARY ON DATABASE shopkeeper TO {role};$", sql, re.M)
    # The password: SHOPKEEPER_<SERVICE>_DB_PASSWORD, else role_password()'s default.
    monkeypatch.delenv(f"SHOPKEEPER_{name.upper()}_DB_PASSWORD", raising=False)
    block = sql.split(f"\\getenv pw SHOPKEEPER_{name.upper()}_DB_PASSWORD", 1)[1].split("CREATE ROLE", 1)[0]
    assert re.search(rf"\\set pw '{re.escape(role_password(name))}'", block)
    # Compose gives Postgres the same password it puts in the service's URL.
    pg_env = environment(service("postgres"))
    assert pg_env[f"SHOPKEEPER_{name.upper()}_DB_PASSWORD"] == role_password(name)


def test_init_sql_creates_the_database_and_closes_it_and_public_to_everyone_else() -> None:
    sql = init_sql()
    assert re.search(r"^CREATE DATABASE shopkeeper;$", sql, re.M)
    assert re.search(r"^\\connect shopkeeper$", sql, re.M)
    assert re.search(r"^REVOKE ALL ON DATABASE shopkeeper FROM PUBLIC;$", sql, re.M)
    assert re.search(r"^REVOKE ALL ON SCHEMA public FROM PUBLIC;$", sql, re.M)
    assert len(re.findall(r"^CREATE ROLE ", sql, re.M)) == len(SERVICES) + len(WEB_APPS)


def test_the_console_runs_from_the_image_on_port_8000_with_its_own_login_and_the_services_urls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPKEEPER_CONSOLE_DB_PASSWORD", raising=False)
    svc = service("console")
    assert command(svc) == ["python", "-m", "services.console"]
    env = environment(svc)
    url = urlsplit(env["SHOPKEEPER_CONSOLE_DATABASE_URL"])
    assert (url.username, url.password, url.hostname) == ("console", role_password("console"),
                                                          "postgres")
    assert published_ports(svc) == [("127.0.0.1", "8000", DEFAULT_PORTS["console"])]
    assert "127.0.0.1:8000/readyz" in healthcheck_text(svc)
    for name in SERVICES:
        assert env[f"SHOPKEEPER_{name.upper()}_URL"] == f"http://{name}:{DEFAULT_PORTS[name]}"


# --- Prometheus and Grafana ---------------------------------------------------------------------
def prometheus_config() -> tuple[dict[str, Any], dict[str, Path]]:
    binds = mounts(service("prometheus"))
    config = binds["/etc/prometheus/prometheus.yml"]
    assert config == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    return yaml.safe_load(config.read_text()), binds


def test_prometheus_finds_every_replica_of_every_service_on_its_port() -> None:
    config, _ = prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["shopkeeper"]  # stack/prometheus/alerts.yml selects job="shopkeeper"
    targets = {}
    for sd in job["dns_sd_configs"]:
        assert sd["type"] == "A", "one A record per replica"
        for name in sd["names"]:
            targets[name] = sd["port"]
    assert targets == {name: DEFAULT_PORTS[name] for name in (*SERVICES, *WEB_APPS)}
    assert all(name in compose()["services"] for name in targets)
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in job["relabel_configs"]


def test_prometheus_mounts_the_stack_alert_rules_file_itself() -> None:
    config, binds = prometheus_config()
    rules = [binds[str(Path("/etc/prometheus") / f)] for f in config["rule_files"]]
    assert rules == [ROOT / "stack" / "prometheus" / "alerts.yml"]
    assert rules[0].is_file()
    exprs = [r["expr"] for g in yaml.safe_load(rules[0].read_text())["groups"] for r in g["rules"]]
    used = set().union(*(promql_metrics(e) for e in exprs))
    assert used - PROMETHEUS_SERIES <= exported_metrics()


def test_grafana_dashboard_queries_only_metrics_the_services_export() -> None:
    queries = dashboard_queries()
    assert queries
    exported = exported_metrics()
    for expr in queries:
        used = promql_metrics(expr)
        assert used, f"no metric in {expr!r}"
        assert used - PROMETHEUS_SERIES <= exported, f"{expr!r} queries {sorted(used - exported)}"
    for variable in dashboard()["templating"]["list"]:
        for metric in re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", json.dumps(variable)):
            assert metric in exported


def test_grafana_dashboard_shows_flow_latency_backlog_dead_letters_and_order_statuses() -> None:
    queries = dashboard_queries()
    used = set().union(*(promql_metrics(q) for q in queries))
    assert {"shopkeeper_events_consumed_total", "shopkeeper_handler_seconds_bucket",
            "shopkeeper_consumer_lag", "shopkeeper_outbox_pending", "shopkeeper_outbox_oldest_seconds",
            "shopkeeper_dlq_total", "shopkeeper_order_status_total"} <= used
    assert any("histogram_quantile" in q and "shopkeeper_handler_seconds_bucket" in q for q in queries)

    def grouped(metric: str, label: str) -> bool:
        return any(metric in q and re.search(rf"by \([^)]*\b{label}\b", q) for q in queries)

    for label in ("service", "topic", "outcome"):
        assert grouped("shopkeeper_events_consumed_total", label)
    assert grouped("shopkeeper_order_status_total", "status")
    assert grouped("shopkeeper_order_status_total", "reason")


def test_grafana_dashboard_has_a_row_per_part_of_the_business_and_for_the_outbox() -> None:
    rows: dict[str, set[str]] = {}
    current = ""
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = set()
            continue
        for target in panel.get("targets", []):
            rows[current] |= promql_metrics(target["expr"])
    expected = {
        "Holds (intake)": {"shopkeeper_holds_open", "shopkeeper_hold_oldest_seconds",
                           "shopkeeper_hold_sla_breaches_total", "shopkeeper_intake_decisions_total"},
        "Stock (inventory)": {"shopkeeper_inventory_low_stock_skus",
                              "shopkeeper_inventory_backorders_total"},
        "Fulfillment": {"shopkeeper_fulfillment_parcels_packed_total",
                        "shopkeeper_fulfillment_wave_size_bucket"},
        "Logistics": {"shopkeeper_logistics_parcels_shipped_total",
                      "shopkeeper_logistics_parcels_held_total", "shopkeeper_logistics_exceptions_total"},
        "Aftersales": {"shopkeeper_aftersales_requests_total",
                       "shopkeeper_aftersales_refund_amount_total"},
        "Channels (marketplace connectors)": {"shopkeeper_channel_deliveries_total",
                                              "shopkeeper_channel_writebacks_total"},
        "Outbox and dead letters": {"shopkeeper_outbox_quarantined", "shopkeeper_consumer_blocked",
                                    "shopkeeper_dlq_truncated_total"},
    }
    for title, metrics in expected.items():
        assert title in rows, f"no row {title!r}"
        assert metrics <= rows[title], f"{title}: missing {sorted(metrics - rows[title])}"
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]


# --- alerts ---------------------------------------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((ROOT / "stack" / "prometheus" / "alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def markdown_anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_has_a_runbook_entry_in_operations_md() -> None:
    anchors = markdown_anchors((ROOT / "docs" / "OPERATIONS.md").read_text())
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert path == "docs/OPERATIONS.md", f"{rule['alert']}: runbook_url {url!r}"
        assert anchor == rule["alert"].lower() and anchor in anchors, (
            f"{rule['alert']}: no heading '### {rule['alert']}' in docs/OPERATIONS.md")
        assert rule["labels"]["severity"] in ("page", "warn")


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus"
                    " package ships it; scripts/install-system-deps.sh installs it)")
def test_promtool_accepts_the_alert_rules() -> None:
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "rules", str(ROOT / "stack/prometheus/alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus"
                    " package ships it; scripts/install-system-deps.sh installs it)")
def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a bad expression is refused."""
    assert PROMTOOL is not None
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n"
                   "        expr: sum by (service (up)\n")
    result = subprocess.run([PROMTOOL, "check", "rules", str(bad)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus"
                    " package ships it; scripts/install-system-deps.sh installs it)")
def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    (tmp_path / "prometheus.yml").write_text(
        (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (tmp_path / "alerts.yml").write_text((ROOT / "stack/prometheus/alerts.yml").read_text())
    result = subprocess.run([PROMTOOL, "check", "config", "--syntax-only",
                             str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_sends_alerts_to_alertmanager_which_routes_them_to_a_webhook() -> None:
    config, _ = prometheus_config()
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    svc = service("alertmanager")
    assert published_ports(svc) == [("127.0.0.1", "9093", 9093)]
    binds = mounts(svc)
    path = binds["/etc/alertmanager/alertmanager.yml"]
    assert path == ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in svc["command"]
    am_config = yaml.safe_load(path.read_text())
    receivers = {r["name"]: r for r in am_config["receivers"]}
    routed = {am_config["route"]["receiver"]} | {r["receiver"] for r in am_config["route"]["routes"]}
    assert routed <= set(receivers)
    (hook,) = receivers[am_config["route"]["receiver"]]["webhook_configs"]
    url = urlsplit(hook["url"])
    sink = service(url.hostname or "")
    assert command(sink)[:3] == ["python", "-m", "tools.alert_log"]
    assert command(sink)[command(sink).index("--port") + 1] == str(url.port)
    assert url.path == "/alerts"
    assert "service" in am_config["route"]["group_by"]


def test_grafana_provisions_prometheus_and_the_dashboard_file() -> None:
    binds = mounts(service("grafana"))
    datasources = binds["/etc/grafana/provisioning/datasources"]
    providers = binds["/etc/grafana/provisioning/dashboards"]
    assert datasources == ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
    assert providers == ROOT / "deploy" / "grafana" / "provisioning" / "dashboards"
    (source,) = yaml.safe_load((datasources / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert (source["type"], url.hostname, url.port) == ("prometheus", "prometheus", 9090)
    (provider,) = yaml.safe_load((providers / "shopkeeper.yml").read_text())["providers"]
    assert (binds[provider["options"]["path"]] / "shopkeeper.json").is_file()
    panel_sources = {p["datasource"]["uid"] for p in dashboard()["panels"] if "datasource" in p}
    assert panel_sources == {source["uid"]}


# --- the image ----------------------------------------------------------------------------------
def test_image_builds_the_project_in_a_venv_and_runs_it_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", dockerfile, re.M)
    assert [alias for _, alias in stages] == ["builder", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"pip install .*--no-deps \.", dockerfile)
    assert re.search(r"^USER shopkeeper$", dockerfile, re.M)
    assert "SHOPKEEPER_HTTP_HOST=0.0.0.0" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib\.request.*/healthz", dockerfile, re.M)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in src.split():
            if not path.endswith("*"):  # README.md* is optional
                assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for pattern in packages["find"]["include"]:
        assert re.search(rf"^COPY {pattern.rstrip('*')} ", dockerfile, re.M), f"{pattern} not in the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".local", ".venv", ".git"} <= set(ignored)


def test_a_service_login_over_the_unix_socket_keeps_role_database_and_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The local stack hands services a socket URL; each still logs in as its own role."""
    monkeypatch.delenv("SHOPKEEPER_INVENTORY_DATABASE_URL", raising=False)
    admin = unix_socket_url("postgresql://postgres:secret@127.0.0.1:6432/shopkeeper", "/run/pg")
    assert admin == "postgresql://postgres:secret@/shopkeeper?host=/run/pg&port=6432"
    url = urlsplit(service_database_url("inventory", Settings(database_url=admin)))
    assert (url.username, url.password, url.hostname, url.path) == (
        "inventory", role_password("inventory"), None, "/shopkeeper")
    assert url.query == "host=/run/pg&port=6432"
