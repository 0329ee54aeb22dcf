"""deploy/k8s checked offline (no cluster runs here).

What is checked:
- the base and the production overlay build with kustomize (`kubectl kustomize`; without kubectl
  the base's files are read as they are and the overlay is not built: said in the skip reason);
- every core resource (Deployment, Service, PodDisruptionBudget, Job, ConfigMap, Namespace)
  against Kubernetes 1.33's JSON Schemas in strict mode (unknown fields refused), as shipped by
  the `kubernetes-validate` package;
- the operators' resources structurally, field by field, with what each operator requires and
  what this project relies on: Strimzi `Kafka` and `KafkaNodePool` (KRaft, 3 controller+broker
  nodes, replication 3, min.insync.replicas 2, unclean election and auto-creation off), the
  CloudNativePG `Cluster` (instances, storage, the database, a schema and a managed login role
  per service whose Secret the service reads), KEDA `ScaledObject`s (a Kafka trigger on the
  service's consumer group, the bootstrap service the Kafka resource creates, a target that is a
  Deployment of the render, at most one replica per partition);
- the services against the code: every service deployed with its module, port, probes
  (/readyz, /healthz), resources, a PDB, and only environment variables the code reads.
What is not: the CRDs' own OpenAPI schemas (not shipped by any package here), and anything only
a cluster shows (operators reconciling, probes passing, KEDA scaling).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.console.config import ConsoleSettings
from shared.settings import DEFAULT_PORTS, SERVICES, WEB_APPS, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
K8S_VERSION = "1.33.0"
CORE = {"v1", "apps/v1", "batch/v1", "policy/v1"}
NO_KUBECTL = ("kubectl is not installed: kustomize cannot build the overlay (the base's files"
              " are checked as they are)")


def _read(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@cache
def build(target: str) -> tuple[dict[str, Any], ...]:
    """The resources `kubectl apply -k deploy/k8s/<target>` would send."""
    if KUBECTL is None:
        if target != "base":
            pytest.skip(NO_KUBECTL)
        kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
        return tuple(d for f in kustomization["resources"] for d in _read(K8S / "base" / f))
    out = subprocess.run([KUBECTL, "kustomize", str(K8S / target)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


TARGETS = ["base", "overlays/production"]


# --- core resources against the Kubernetes schemas ----------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_core_resources_are_valid_kubernetes_in_strict_mode(target: str) -> None:
    docs = build(target)
    core = [d for d in docs if d["apiVersion"] in CORE]
    assert {d["kind"] for d in core} >= {"Deployment", "Service", "PodDisruptionBudget", "Job"}
    errors = []
    for doc in core:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}"
                          f" at {'/'.join(map(str, exc.path))}")
    assert not errors, "\n".join(errors)
    others = {d["apiVersion"] for d in docs} - CORE
    assert others == {"kafka.strimzi.io/v1beta2", "postgresql.cnpg.io/v1", "keda.sh/v1alpha1"}


def test_the_schema_check_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = copy.deepcopy(of_kind(build("base"), "Deployment")["inventory"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(of_kind(build("base"), "Deployment")["inventory"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# --- the services -------------------------------------------------------------------------------
def container(docs: tuple[dict[str, Any], ...], name: str) -> dict[str, Any]:
    (c,) = of_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("name", [*SERVICES, *WEB_APPS])
def test_each_service_runs_its_module_on_its_port_with_probes_and_resources(name: str) -> None:
    docs = build("base")
    c = container(docs, name)
    assert c["command"] == ["python", "-m", f"services.{name}"]
    assert c["ports"] == [{"name": "http", "containerPort": DEFAULT_PORTS[name], "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert "memory" in c["resources"]["limits"]
    svc = of_kind(docs, "Service")[name]
    assert svc["spec"]["ports"][0]["port"] == DEFAULT_PORTS[name]
    deployment = of_kind(docs, "Deployment")[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (svc["spec"]["selector"],
                     of_kind(docs, "PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"],
                     deployment["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    pdb = of_kind(docs, "PodDisruptionBudget")[name]["spec"]
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 1


def known_variables() -> set[str]:
    known = {field.upper() for field in Settings.model_fields}
    for name in SERVICES:
        known |= {f"SHOPKEEPER_{name.upper()}_{s}" for s in ("DATABASE_URL", "DB_PASSWORD", "PORT")}
    return known


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_only_variables_the_code_reads_and_its_own_login(name: str) -> None:
    docs = build("base")
    c = container(docs, name)
    env = {e["name"]: e for e in c["env"]}
    (config,) = of_kind(docs, "ConfigMap").values()
    assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert set(env) | set(config["data"]) <= known_variables()
    url = env[f"SHOPKEEPER_{name.upper()}_DATABASE_URL"]["value"]
    (cluster,) = of_kind(docs, "Cluster")
    assert url == (f"postgresql://{name}:$(SHOPKEEPER_{name.upper()}_DB_PASSWORD)"
                   f"@{cluster}-rw:5432/shopkeeper")
    password = env[f"SHOPKEEPER_{name.upper()}_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": f"shopkeeper-{name}-db", "key": "password"}
    assert [k for k in env if k.endswith("_DATABASE_URL")] == [f"SHOPKEEPER_{name.upper()}_DATABASE_URL"]
    assert env["SHOPKEEPER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "shopkeeper-admin"
    assert config["data"]["SHOPKEEPER_HTTP_HOST"] == "0.0.0.0"


def test_the_console_gets_only_variables_the_code_reads_and_every_service_by_its_service() -> None:
    docs = build("base")
    c = container(docs, "console")
    env = {e["name"]: e for e in c["env"]}
    known = ({f"SHOPKEEPER_CONSOLE_{f.upper()}" for f in ConsoleSettings.model_fields}
             | {f"SHOPKEEPER_{s.upper()}_URL" for s in SERVICES}
             | {"SHOPKEEPER_ADMIN_TOKEN", "SHOPKEEPER_CONSOLE_DATABASE_URL",
                "SHOPKEEPER_CONSOLE_DB_PASSWORD"})
    assert set(env) <= known
    services = of_kind(docs, "Service")
    for name in SERVICES:
        assert env[f"SHOPKEEPER_{name.upper()}_URL"]["value"] == \
            f"http://{name}:{services[name]['spec']['ports'][0]['port']}"
    assert env["SHOPKEEPER_CONSOLE_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "shopkeeper-console-db", "key": "password"}
    assert "console" not in of_kind(docs, "ScaledObject"), "no consumer, no lag to scale on"


# --- Strimzi ------------------------------------------------------------------------------------
def test_kafka_is_kraft_with_three_nodes_replication_three_and_min_isr_two() -> None:
    docs = build("base")
    (name, kafka), = of_kind(docs, "Kafka").items()
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled",
                                                "strimzi.io/kraft": "enabled"}
    spec = kafka["spec"]
    assert "zookeeper" not in spec
    listeners = spec["kafka"]["listeners"]  # required by the Kafka CRD
    assert all({"name", "port", "type", "tls"} <= set(item) for item in listeners)
    config = spec["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["unclean.leader.election.enable"] is False
    assert config["auto.create.topics.enable"] is False
    assert config["num.partitions"] == Settings.model_fields["shopkeeper_topic_partitions"].default
    pools = list(of_kind(docs, "KafkaNodePool").values())
    assert sum(p["spec"]["replicas"] for p in pools) == 3
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == name
        assert set(pool["spec"]["roles"]) == {"controller", "broker"}
        assert pool["spec"]["storage"]["type"] in ("jbod", "persistent-claim")


def kafka_bootstrap(docs: tuple[dict[str, Any], ...]) -> str:
    (name, kafka), = of_kind(docs, "Kafka").items()
    (plain,) = [item for item in kafka["spec"]["kafka"]["listeners"] if not item["tls"]]
    return f"{name}-kafka-bootstrap:{plain['port']}"  # the Service Strimzi creates


def test_services_and_the_topics_job_use_the_bootstrap_service_strimzi_creates() -> None:
    docs = build("base")
    (config,) = of_kind(docs, "ConfigMap").values()
    assert config["data"]["KAFKA_BOOTSTRAP_SERVERS"] == kafka_bootstrap(docs)
    job = of_kind(docs, "Job")["shopkeeper-topics"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    cmd = c["command"]
    assert cmd[:4] == ["python", "-m", "stack", "topics"]
    args = dict(zip(cmd[4::2], cmd[5::2], strict=True))
    assert args == {"--bootstrap": kafka_bootstrap(docs), "--replication": "3", "--partitions": "6"}


# --- CloudNativePG ------------------------------------------------------------------------------
def test_postgres_cluster_has_a_schema_and_a_managed_login_role_per_service() -> None:
    docs = build("base")
    (cluster,) = of_kind(docs, "Cluster").values()
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] >= 3
    assert re.fullmatch(r"\d+(Gi|Ti)", spec["storage"]["size"])  # storage is required
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] == "shopkeeper"
    sql = initdb["postInitApplicationSQL"]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == {*SERVICES, *WEB_APPS}
    for name in [*SERVICES, *WEB_APPS]:
        assert f"CREATE SCHEMA {name} AUTHORIZATION {name}" in sql
        assert f"ALTER ROLE {name} SET search_path = {name}" in sql
        assert roles[name]["login"] is True and roles[name]["ensure"] == "present"
        assert roles[name]["passwordSecret"] == {"name": f"shopkeeper-{name}-db"}
    assert "REVOKE ALL ON SCHEMA public FROM PUBLIC" in sql


# --- KEDA ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_scales_on_its_consumer_groups_lag(name: str) -> None:
    docs = build("base")
    scaled = of_kind(docs, "ScaledObject")[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] in of_kind(docs, "Deployment")
    assert spec["scaleTargetRef"]["name"] == name
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    partitions = Settings.model_fields["shopkeeper_topic_partitions"].default
    assert spec["maxReplicaCount"] <= partitions
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    # The consumer group is the service's name (shared/messaging.py Consumer: group_id=service).
    assert meta["consumerGroup"] == name
    assert meta["bootstrapServers"] == kafka_bootstrap(docs)
    assert int(meta["lagThreshold"]) > 0
    assert all(isinstance(v, str) for v in meta.values()), "trigger metadata values are strings"


def test_the_consumer_group_is_the_service_name_in_the_code() -> None:
    source = (ROOT / "shared" / "messaging.py").read_text()
    assert '"group_id": service' in source


# --- the overlay --------------------------------------------------------------------------------
def test_the_production_overlay_sets_namespace_image_and_keeps_every_resource() -> None:
    base, overlay = build("base"), build("overlays/production")

    def names(docs: tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
        # a generated ConfigMap's name ends in a hash of its content, which the overlay changes
        return {(d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
                 if d["kind"] == "ConfigMap" else d["metadata"]["name"]) for d in docs}
    assert names(overlay) - {("Namespace", "shopkeeper")} == names(base)
    for doc in overlay:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "shopkeeper", doc["metadata"]["name"]
    images = {c["image"] for d in overlay if d["kind"] in ("Deployment", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example.com/shopkeeper:0.1.0"}
    (config,) = of_kind(overlay, "ConfigMap").values()
    for d in of_kind(overlay, "Deployment").values():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert container(overlay, "inventory")["resources"]["requests"]["cpu"] == "500m"
