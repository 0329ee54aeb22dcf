"""`python -m stack up|down|status`: the local stack as plain processes (no Docker here).

Kafka 4.x in KRaft mode (jars from Maven Central), PostgreSQL from Debian's packages run as the
`postgres` user, every service as its own process, and Prometheus when installed. State lives in
`.local/` (git-ignored). Setting KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL points the stack at an
existing Kafka or Postgres: then that part is not started here, only prepared (topics; database,
schemas and roles).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("SHOPKEEPER_LOCAL_DIR", ROOT / ".local"))
RUN = LOCAL / "run"
LOGS = LOCAL / "logs"
KAFKA_LIB = LOCAL / "kafka" / "lib"
PG_DATA = LOCAL / "pg" / "data"
PG_SOCK = LOCAL / "pg" / "sock"
PROM_DATA = LOCAL / "prometheus"

sys.path.insert(0, str(ROOT))
from shared.settings import (  # noqa: E402
    DEFAULT_PORTS,
    SERVICES,
    WEB_APPS,
    get_settings,
    prometheus_port,
    role_name,
    role_password,
    service_port,
    unix_socket_url,
)


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"[stack] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# --- processes ------------------------------------------------------------------------------
def pid_of(name: str) -> int | None:
    f = RUN / f"{name}.pid"
    if not f.exists():
        return None
    try:
        pid = int(f.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        f.unlink(missing_ok=True)
        return None
    return pid


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None,
          cwd: Path = ROOT) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True)
    (RUN / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop_pid(name: str, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
    pid = pid_of(name)
    if pid is None:
        return
    with _suppress():
        os.killpg(pid, sig)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        say(f"{name} did not stop in {timeout:.0f}s; killing it")
        with _suppress():
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
    (RUN / f"{name}.pid").unlink(missing_ok=True)


def _reap(pid: int) -> None:
    with _suppress():
        os.waitpid(pid, os.WNOHANG)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        # ProcessLookupError, PermissionError, ChildProcessError: all OSErrors.
        return exc_type is not None and issubclass(exc_type, OSError)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(what: str, check: object, timeout: float, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    tail = ""
    if log and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    fail(f"{what} not ready after {timeout:.0f}s. Last lines of {log}:\n{tail}")


# --- Kafka ----------------------------------------------------------------------------------
def kafka_external() -> bool:
    return "KAFKA_BOOTSTRAP_SERVERS" in os.environ


def ensure_kafka_jars() -> None:
    if any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
        return
    if not shutil.which("mvn"):
        fail("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    say("fetching Apache Kafka jars from Maven Central (once; cached in .local/kafka/lib)")
    KAFKA_LIB.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(ROOT / "stack/kafka/pom.xml"),
                    "dependency:copy-dependencies", f"-DoutputDirectory={KAFKA_LIB}"], check=True)


def controller_port(node: int) -> int:
    return 19092 + node + get_settings().shopkeeper_port_offset


def kafka_props(node: int, brokers: int, data: Path) -> str:
    voters = ",".join(f"{i}@127.0.0.1:{controller_port(i)}" for i in range(1, brokers + 1))
    port = kafka_port(node)
    repl = min(3, brokers)
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port(node)}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=6",
        "auto.create.topics.enable=false",
        f"default.replication.factor={repl}",
        f"min.insync.replicas={2 if brokers >= 3 else 1}",
        "unclean.leader.election.enable=false",
        f"offsets.topic.replication.factor={repl}",
        "offsets.topic.num.partitions=6",
        f"transaction.state.log.replication.factor={repl}",
        f"transaction.state.log.min.isr={2 if brokers >= 3 else 1}",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168",
        "",
    ])


def kafka_port(node: int) -> int:
    return 9092 + 100 * (node - 1) + get_settings().shopkeeper_port_offset


KAFKA_COLLECTORS = ("Parallel", "G1", "Serial")


def start_kafka(brokers: int = 1) -> None:
    ensure_kafka_jars()
    java = shutil.which("java")
    if not java:
        fail("Java 17 is needed for Kafka: apt-get install openjdk-17-jdk-headless")
        return
    cluster_file = LOCAL / "kafka" / f"cluster-{brokers}.id"
    if not cluster_file.exists():
        cluster_file.write_text(str(uuid.uuid4().hex[:22]))
    for node in range(1, brokers + 1):
        name = "kafka" if brokers == 1 else f"kafka-{node}"
        if pid_of(name):
            continue
        base = LOCAL / "kafka" / (f"node-{node}" if brokers > 1 else "single")
        data = base / "data"
        base.mkdir(parents=True, exist_ok=True)
        props = base / "server.properties"
        props.write_text(kafka_props(node, brokers, data))
        classpath = f"{KAFKA_LIB}/*"
        if not (data / "meta.properties").exists():
            cid = _cluster_id(java, classpath, cluster_file)
            subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
                            cid, "-c", str(props), "--ignore-formatted"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        logdir = LOGS / name
        logdir.mkdir(parents=True, exist_ok=True)
        heap = os.environ.get("SHOPKEEPER_KAFKA_HEAP", "1g" if brokers == 1 else "512m")
        # The parallel collector by default: in two pairs of runs on two cores the broker took
        # 15-18 % less CPU per order with it than with G1; the throughput differences were within
        # this machine's own swings (docs/BENCHMARKS.md, eighth round).
        # SHOPKEEPER_KAFKA_GC=G1 for Kafka's own default.
        gc = os.environ.get("SHOPKEEPER_KAFKA_GC", "Parallel")
        if gc not in KAFKA_COLLECTORS:
            fail(f"SHOPKEEPER_KAFKA_GC={gc!r}: use one of {', '.join(KAFKA_COLLECTORS)}")
            return
        spawn(name, [java, f"-Xmx{heap}", f"-Xms{heap}", f"-XX:+Use{gc}GC",
                     "-Djava.awt.headless=true", f"-Dkafka.logs.dir={logdir}",
                     f"-Dlog4j.configuration=file:{ROOT / 'stack/kafka/log4j.properties'}",
                     "-cp", classpath, "kafka.Kafka", str(props)])
        say(f"started Kafka broker {node} on 127.0.0.1:{kafka_port(node)}")
    for node in range(1, brokers + 1):
        name = "kafka" if brokers == 1 else f"kafka-{node}"
        wait_for(f"Kafka broker {node}", lambda n=node: port_open("127.0.0.1", kafka_port(n)),
                 90, LOGS / name / "server.log")


def _cluster_id(java: str, classpath: str, cluster_file: Path) -> str:
    cid = cluster_file.read_text().strip()
    if len(cid) == 22:
        return cid
    out = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    cluster_file.write_text(out[-1])
    return out[-1]


# Seven days, stated on every topic rather than left to the broker's default: the services'
# inbox pruning checks that it keeps event ids longer than this (messaging.prune_inbox_forever).
TOPIC_CONFIGS = {"retention.ms": str(7 * 24 * 3600 * 1000)}


async def create_topics(bootstrap: str, partitions: int, replication: int) -> int:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.topics import all_topic_names

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    deadline = time.time() + 90
    while True:
        try:
            await admin.start()
            break
        except Exception as exc:
            if time.time() > deadline:
                raise
            say(f"waiting for Kafka metadata ({exc})")
            await asyncio.sleep(1)
    try:
        for _ in range(60):
            existing = set(await admin.list_topics())
            missing = [n for n in all_topic_names() if n not in existing]
            if not missing:
                return 0
            try:
                await admin.create_topics([NewTopic(n, partitions, replication,
                                                    topic_configs=TOPIC_CONFIGS) for n in missing])
            except Exception as exc:  # TopicAlreadyExists in a race, or the controller not ready
                say(f"topic creation retry: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                continue
            say(f"created {len(missing)} topics ({partitions} partitions, replication"
                f" {replication})")
            await asyncio.sleep(0.5)
        return len(missing)
    finally:
        await admin.close()


# --- Postgres -------------------------------------------------------------------------------
def pg_external() -> bool:
    return "DATABASE_URL" in os.environ


def services_database_url() -> str:
    """The admin URL the stack hands the services it starts (each derives its own login from it):
    the Postgres the stack started is reached over its Unix socket, which costs less per round
    trip than TCP on loopback (here about 20 % less client CPU and 20-35 % more transactions/s
    on one connection; docs/BENCHMARKS.md). An external DATABASE_URL is used as given."""
    url = get_settings().database_url
    return url if pg_external() else unix_socket_url(url, str(PG_SOCK))


def pg_bin(tool: str) -> str:
    for version in ("17", "16", "15"):
        p = Path(f"/usr/lib/postgresql/{version}/bin/{tool}")
        if p.exists():
            return str(p)
    found = shutil.which(tool)
    if not found:
        fail(f"PostgreSQL server binaries not found ({tool}): apt-get install postgresql")
    return found  # type: ignore[return-value]


def as_postgres(argv: list[str]) -> list[str]:
    return argv if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *argv]


# Checkpoints far enough apart that a page is not logged whole again and again (docs/OPERATIONS.md,
# Postgres): with the defaults (max_wal_size 1GB) a benchmark forced a checkpoint every ~45 s, and
# after each the first change to every page (random-uuid index pages: inboxes, facts, timeline)
# wrote the whole 8 KB page to the WAL: 1.8 million such images, 15 of 23 GB of WAL in 35 min.
# With these, less than half the WAL per order (docs/BENCHMARKS.md, sixth round).
# The same settings are in docker-compose.yml.
PG_WAL_SETTINGS = ("max_wal_size=4GB", "checkpoint_timeout=15min", "wal_compression=lz4")


def start_postgres() -> None:
    url = urlsplit(get_settings().database_url)
    port = url.port or 5432
    if (PG_DATA / "postmaster.pid").exists():
        if port_open("127.0.0.1", port):
            return
        stop_postgres()  # ours, but on another port (the offset changed) or half-dead
    if port_open("127.0.0.1", port):
        fail(f"port {port} is taken by a PostgreSQL the stack did not start (Debian's own cluster?)."
             " Stop it (pg_ctlcluster <version> main stop) or point DATABASE_URL at it to use it.")
    for d in (LOCAL, LOCAL / "pg"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    PG_SOCK.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(LOCAL / "pg", "postgres", "postgres")
        shutil.chown(PG_SOCK, "postgres", "postgres")
    if not (PG_DATA / "PG_VERSION").exists():
        pwfile = LOCAL / "pg" / "pw"
        pwfile.write_text(url.password or "postgres")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        say("initialising a PostgreSQL data directory in .local/pg/data")
        subprocess.run(as_postgres([pg_bin("initdb"), "-D", str(PG_DATA), "-U",
                                    url.username or "postgres", f"--pwfile={pwfile}",
                                    "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                                    "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, stdout=subprocess.DEVNULL)
        pwfile.unlink()
        with open(PG_DATA / "postgresql.conf", "a") as conf:
            conf.write("\n# shopkeeper local stack\n"
                       "listen_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{PG_SOCK}'\n"
                       "max_connections = 400\nshared_buffers = 256MB\n"
                       "log_min_messages = warning\n")
    pglog = LOGS / "postgres.log"
    pglog.touch()
    if os.geteuid() == 0:
        shutil.chown(pglog, "postgres", "postgres")
    subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", str(PG_DATA), "-l", str(pglog), "-w",
                                "-t", "60", "-o",
                                # pg_stat_statements: `make bench` counts SQL statements per order
                                f"-p {port} -c shared_preload_libraries=pg_stat_statements "
                                + " ".join(f"-c {s}" for s in PG_WAL_SETTINGS),
                                "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    say(f"started PostgreSQL on 127.0.0.1:{port}")


def stop_postgres() -> None:
    if not (PG_DATA / "postmaster.pid").exists():
        return
    subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w",
                                "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    say("stopped PostgreSQL")


async def bootstrap_database(admin_url: str) -> None:
    """One database; per service one schema and one login role with rights on it alone."""
    import asyncpg

    url = urlsplit(admin_url)
    dbname = url.path.lstrip("/") or "shopkeeper"
    deadline = time.time() + 60
    while True:
        try:
            conn = await asyncpg.connect(admin_url.replace(f"/{dbname}", "/postgres", 1))
            break
        except Exception as exc:
            if time.time() > deadline:
                fail(f"cannot connect to Postgres as admin ({type(exc).__name__}: {exc})")
            await asyncio.sleep(0.5)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'REVOKE ALL ON DATABASE "{dbname}" FROM PUBLIC')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in (*SERVICES, *WEB_APPS):
            role = role_name(service)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            pw = role_password(service).replace("'", "''")
            await conn.execute(f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{pw}'")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}" AUTHORIZATION "{role}"')
            await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{dbname}" TO "{role}"')
            await conn.execute(f'ALTER ROLE "{role}" SET search_path = "{service}"')
    finally:
        await conn.close()


# --- services -------------------------------------------------------------------------------
def service_ready(service: str) -> bool:
    return port_ready(service_port(service))


def brokers() -> int:
    """How many local brokers `up` started (1 unless `--brokers 3`)."""
    f = LOCAL / "kafka" / "brokers"
    return int(f.read_text()) if f.exists() else 1


def bootstrap_servers() -> str:
    if kafka_external() or brokers() == 1:
        return get_settings().kafka_bootstrap_servers
    return ",".join(f"127.0.0.1:{kafka_port(n)}" for n in range(1, brokers() + 1))


def instance_name(service: str, instance: int) -> str:
    return service if instance == 1 else f"{service}-{instance}"


def instance_port(service: str, instance: int) -> int:
    """Extra instances of a service listen 100 ports above the previous one."""
    return service_port(service) + 100 * (instance - 1)


def start_services(only: list[str] | None = None, instance: int = 1) -> None:
    """Start (instance n of) each service that is not running and wait until it is ready."""
    for service in only or SERVICES:
        name = instance_name(service, instance)
        if pid_of(name):
            continue
        env = {f"SHOPKEEPER_{service.upper()}_PORT": str(instance_port(service, instance))}
        if brokers() > 1 and not kafka_external():
            env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers()
        env["DATABASE_URL"] = services_database_url()
        if service == "console" and "SHOPKEEPER_CONSOLE_COOKIE_SECURE" not in os.environ:
            env["SHOPKEEPER_CONSOLE_COOKIE_SECURE"] = "false"  # the local stack serves plain http
        if service == "console" and "SHOPKEEPER_CONSOLE_ANALYTICS_PUBLIC_URL" not in os.environ:
            # the Dashboard page links the analytics dashboard where the browser reaches it
            env["SHOPKEEPER_CONSOLE_ANALYTICS_PUBLIC_URL"] = \
                f"http://127.0.0.1:{service_port('analytics')}"
        spawn(name, [sys.executable, "-m", f"services.{service}"], env)
    for service in only or SERVICES:
        port = instance_port(service, instance)
        wait_for(f"service {instance_name(service, instance)}",
                 lambda p=port: port_ready(p), 120,
                 LOGS / f"{instance_name(service, instance)}.log")
    say("services ready: " + ", ".join(f"{instance_name(s, instance)}:{instance_port(s, instance)}"
                                       for s in only or SERVICES))


def port_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


# --- Prometheus -----------------------------------------------------------------------------
def start_prometheus() -> None:
    binary = shutil.which("prometheus")
    if not binary:
        say("prometheus not installed; skipping (apt-get install prometheus)")
        return
    if pid_of("prometheus"):
        return
    PROM_DATA.mkdir(parents=True, exist_ok=True)
    port = prometheus_port()
    spawn("prometheus", [binary, f"--config.file={prometheus_config()}",
                         f"--storage.tsdb.path={PROM_DATA}",
                         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d"])

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False
    wait_for("Prometheus", ready, 60, LOGS / "prometheus.log")
    say(f"started Prometheus on 127.0.0.1:{port}")


def prometheus_config() -> Path:
    """stack/prometheus/prometheus.yml with this stack's ports (they move with the offset)."""
    text = (ROOT / "stack/prometheus/prometheus.yml").read_text()
    for service, default in DEFAULT_PORTS.items():
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{service_port(service)}")
    text = text.replace("- alerts.yml", f"- {ROOT / 'stack/prometheus/alerts.yml'}")
    out = LOCAL / "prometheus.yml"
    out.write_text(text)
    return out


# --- commands -------------------------------------------------------------------------------
def up(args: argparse.Namespace) -> None:
    settings = get_settings()
    t0 = time.time()
    if not kafka_external():
        if brokers() != args.brokers and any(pid_of(n) for n in ("kafka", "kafka-1")):
            fail(f"a {brokers()}-broker Kafka is running here; `make down` first")
        (LOCAL / "kafka").mkdir(parents=True, exist_ok=True)
        (LOCAL / "kafka" / "brokers").write_text(str(args.brokers))
        start_kafka(args.brokers)
    bootstrap = bootstrap_servers()
    asyncio.run(create_topics(bootstrap, settings.shopkeeper_topic_partitions,
                              min(3, args.brokers) if args.brokers > 1
                              else settings.shopkeeper_topic_replication))
    if not pg_external():
        start_postgres()
    asyncio.run(bootstrap_database(settings.database_url))
    if not args.infra_only:
        start_services()
        start_services(list(WEB_APPS))
        start_prometheus()
    say(f"stack up in {time.time() - t0:.1f}s")


def down(args: argparse.Namespace) -> None:
    for app in WEB_APPS:
        stop_pid(app, timeout=20)
    for service in SERVICES:
        for name in [instance_name(service, i) for i in range(1, 6)]:
            stop_pid(name, timeout=20)
    stop_pid("prometheus", timeout=10)
    for name in ["kafka", "kafka-1", "kafka-2", "kafka-3"]:
        stop_pid(name, timeout=40)
    stop_postgres()
    if args.wipe:
        shutil.rmtree(LOCAL / "kafka" / "single", ignore_errors=True)
        for n in (1, 2, 3):
            shutil.rmtree(LOCAL / "kafka" / f"node-{n}", ignore_errors=True)
        shutil.rmtree(LOCAL / "pg", ignore_errors=True)
        shutil.rmtree(PROM_DATA, ignore_errors=True)
        shutil.rmtree(LOGS, ignore_errors=True)
        say("wiped local data (Kafka jars kept)")
    say("stack down")


def status(args: argparse.Namespace) -> None:
    names = ["kafka", "prometheus", *SERVICES, *WEB_APPS]
    for name in names:
        pid = pid_of(name)
        extra = ""
        if name in SERVICES or name in WEB_APPS:
            extra = "ready" if service_ready(name) else "not ready"
        print(f"{name:12} {'running pid ' + str(pid) if pid else 'stopped':20} {extra}")
    print(f"{'postgres':12} {'running' if (PG_DATA / 'postmaster.pid').exists() else 'stopped'}")


def topics_cmd(args: argparse.Namespace) -> None:
    settings = get_settings()
    asyncio.run(create_topics(args.bootstrap or settings.kafka_bootstrap_servers,
                              args.partitions or settings.shopkeeper_topic_partitions,
                              args.replication or settings.shopkeeper_topic_replication))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start the local stack and wait until every part is ready")
    p_up.add_argument("--brokers", type=int, default=1, help="Kafka brokers (3 for fault tests)")
    p_up.add_argument("--infra-only", action="store_true", help="Kafka and Postgres only")
    p_up.set_defaults(fn=up)
    p_down = sub.add_parser("down", help="stop everything the stack started")
    p_down.add_argument("--wipe", action="store_true", help="also delete Kafka and Postgres data")
    p_down.set_defaults(fn=down)
    sub.add_parser("status").set_defaults(fn=status)
    p_topics = sub.add_parser("topics", help="create every registered topic and its DLQ")
    p_topics.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    p_topics.add_argument("--partitions", type=int)
    p_topics.add_argument("--replication", type=int)
    p_topics.set_defaults(fn=topics_cmd)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
