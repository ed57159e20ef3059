"""Apache Kafka from its Maven Central jars, run with ``java`` in KRaft mode on loopback.

Two layouts: a single combined broker+controller (the default stack, 127.0.0.1:9092) and a
three-node cluster (every node broker+controller, static quorum) for the failure tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from deploy.kafka_acls import AUDITOR
from deploy.local.errors import StackError
from deploy.local.paths import LOCAL_DIR, berlian_home, run_dir
from deploy.local.processes import pid_alive, port_open, start_detached, stop
from shared.kafka_clients import admin_client
from shared.settings import SERVICES, KafkaSettings

KAFKA_VERSION = "4.3.1"
POM = LOCAL_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = LOCAL_DIR / "kafka" / "log4j2.properties"
TOOLS_LOG4J_CONFIG = LOCAL_DIR / "kafka" / "tools-log4j2.properties"
HOST = "127.0.0.1"
HEAP = "-Xmx512m"


@dataclass(frozen=True)
class Node:
    node_id: int
    broker_port: int
    controller_port: int


@dataclass(frozen=True)
class Layout:
    """A named set of nodes; its data, logs and pid files live under ``run_dir()/name``."""

    name: str
    nodes: tuple[Node, ...]
    # Clients log in with SASL/SCRAM and the standard authorizer allows only what ACLs grant.
    secure: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{HOST}:{node.broker_port}" for node in self.nodes)

    def node_dir(self, node: Node) -> Path:
        return run_dir() / self.name / f"node-{node.node_id}"

    def pid_file(self, node: Node) -> Path:
        return self.node_dir(node) / "kafka.pid"

    def log_file(self, node: Node) -> Path:
        return self.node_dir(node) / "logs" / "server.log"

    @property
    def credentials_file(self) -> Path:
        return run_dir() / self.name / "credentials.json"


SINGLE = Layout("kafka", (Node(1, 9092, 9093),))
CLUSTER = Layout(
    "kafka-cluster",
    (Node(1, 19092, 19192), Node(2, 19093, 19193), Node(3, 19094, 19194)),
)
SECURE = Layout("kafka-secure", (Node(1, 29092, 29093),), secure=True)
ADMIN = "admin"
SCRAM = "SCRAM-SHA-512"


def credentials(layout: Layout) -> dict[str, str]:
    """The secure layout's users and passwords (the administrator, the auditor and one per
    service), made
    once per formatted storage and kept beside it, readable by its owner only."""
    path = layout.credentials_file
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    made = {user: secrets.token_urlsafe(18) for user in (ADMIN, AUDITOR, *SERVICES)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(made))
    return made


def tls_dir(layout: Layout) -> Path:
    return run_dir() / layout.name / "tls"


def ensure_certificate(layout: Layout) -> Path:
    """A self-signed certificate for 127.0.0.1 (its own CA), made once with the JDK's keytool:
    the broker's key store, a trust store for its connections to itself, and the certificate
    as PEM for clients. Returns the PEM's path."""
    folder = tls_dir(layout)
    pem = folder / "ca.pem"
    if pem.exists():
        return pem
    folder.mkdir(parents=True, exist_ok=True)
    password = credentials(layout)[ADMIN]
    store = ["-storetype", "PKCS12", "-storepass", password]
    broker_store = ["-keystore", str(folder / "broker.p12"), *store]
    trust_store = ["-keystore", str(folder / "trust.p12"), *store]
    exported = str(folder / "broker.pem")
    identity = ["-dname", f"CN={HOST}", "-ext", f"SAN=ip:{HOST}", "-validity", "3650"]
    steps = [
        ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", *identity, *broker_store],
        ["-exportcert", "-rfc", "-alias", "broker", "-file", exported, *broker_store],
        ["-importcert", "-noprompt", "-alias", "broker", "-file", exported, *trust_store],
    ]
    for step in steps:
        result = subprocess.run(["keytool", *step], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"keytool could not make the broker's certificate: {result.stderr}")
    Path(exported).rename(pem)
    return pem


def client_settings(layout: Layout, user: str = ADMIN, **fields: Any) -> KafkaSettings:
    """Settings for a client of ``layout``; on the secure layout, logged in as ``user``."""
    if not layout.secure:
        return KafkaSettings(kafka_bootstrap_servers=layout.bootstrap_servers, **fields)
    return KafkaSettings(
        kafka_bootstrap_servers=layout.bootstrap_servers,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=str(ensure_certificate(layout)),
        kafka_sasl_mechanism=SCRAM,
        kafka_sasl_username=user,
        kafka_sasl_password=SecretStr(credentials(layout)[user]),
        **fields,
    )


def libs_dir() -> Path:
    return berlian_home() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars() -> Path:
    """Resolve the broker and its runtime dependencies with Maven, once per machine."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is not installed: install it (apt-get install maven).")
    if shutil.which("java") is None:
        raise StackError(
            "Java is not installed: install Java 17 or newer (apt-get install default-jdk)."
        )
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise StackError(
            f"Maven could not resolve Apache Kafka {KAFKA_VERSION} from Maven Central; "
            f"check that Maven Central is reachable and retry.\n{tail}"
        )
    marker.touch()
    return libs


def tool_command(main_class: str, *args: str) -> list[str]:
    """A Kafka command-line tool from the same jars as the broker (format, console consumer)."""
    return [
        "java",
        f"-Dlog4j2.configurationFile={TOOLS_LOG4J_CONFIG}",
        "-cp",
        f"{libs_dir()}/*",
        main_class,
        *args,
    ]


def _properties(layout: Layout, node: Node) -> dict[str, str]:
    node_dir = layout.node_dir(node)
    replicas = len(layout.nodes)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": f"PLAINTEXT://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": (
            f"PLAINTEXT://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node_dir / "data"),
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.partitions": "3",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min(2, replicas)),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min(2, replicas)),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min(2, replicas)),
        "unclean.leader.election.enable": "false",
    }
    if layout.secure:
        props |= _security_properties(layout, node)
    if replicas == 1:
        props["controller.quorum.bootstrap.servers"] = f"{HOST}:{node.controller_port}"
    else:
        props["controller.quorum.voters"] = ",".join(
            f"{n.node_id}@{HOST}:{n.controller_port}" for n in layout.nodes
        )
    return props


def _security_properties(layout: Layout, node: Node) -> dict[str, str]:
    """Clients and brokers log in with SCRAM over TLS; controllers with PLAIN (KRaft keeps SCRAM
    credentials in the metadata the controllers serve, so they cannot use it themselves).
    Nothing is allowed that an ACL does not grant, except to the administrator."""
    password = credentials(layout)[ADMIN]
    ensure_certificate(layout)
    tls = tls_dir(layout)
    scram_login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{password}";'
    )
    plain_login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{ADMIN}" password="{password}" user_{ADMIN}="{password}";'
    )
    listeners = f"SASL_SSL://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}"
    return {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls / "broker.p12"),
        "ssl.keystore.password": password,
        "ssl.key.password": password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(tls / "trust.p12"),
        "ssl.truststore.password": password,
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM,
        f"listener.name.sasl_ssl.{SCRAM.lower()}.sasl.jaas.config": scram_login,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_login,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def _write_properties(path: Path, props: Mapping[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))


def _format(layout: Layout, cluster_id: str) -> None:
    for node in layout.nodes:
        node_dir = layout.node_dir(node)
        config = node_dir / "server.properties"
        if (node_dir / "data" / "meta.properties").exists():
            continue
        node_dir.mkdir(parents=True, exist_ok=True)
        _write_properties(config, _properties(layout, node))
        args = ["format", f"--cluster-id={cluster_id}", "-c", str(config)]
        if len(layout.nodes) == 1:
            args.append("--standalone")
        if layout.secure:
            for user, password in credentials(layout).items():
                args += ["--add-scram", f"{SCRAM}=[name={user},password={password}]"]
        result = subprocess.run(
            tool_command("kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"Kafka could not format its storage in {node_dir / 'data'}: "
                f"{(result.stdout + result.stderr).strip()[-400:]}"
            )


def _cluster_id(layout: Layout) -> str:
    id_file = run_dir() / layout.name / "cluster.id"
    if id_file.exists():
        return id_file.read_text().strip()
    id_file.parent.mkdir(parents=True, exist_ok=True)
    # Kafka's cluster id (what StorageTool random-uuid prints): 16 random bytes, URL-safe base64.
    # Like Kafka's own ids, never one starting with "-", which a command line takes for an option.
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    id_file.write_text(cluster_id + "\n")
    return cluster_id


def running_nodes(layout: Layout) -> list[Node]:
    return [node for node in layout.nodes if pid_alive(layout.pid_file(node)) is not None]


def start_node(layout: Layout, node: Node) -> None:
    """Start one formatted node if it is not running."""
    if pid_alive(layout.pid_file(node)) is not None:
        return
    for port in (node.broker_port, node.controller_port):
        if port_open(HOST, port):
            raise StackError(
                f"Port {port} on {HOST} is taken by another process, so Kafka node "
                f"{node.node_id} cannot start; stop that process (ss -ltnp 'sport = :{port}')."
            )
    node_dir = layout.node_dir(node)
    logs = node_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [
        "java",
        HEAP,
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={logs}",
        "-cp",
        f"{libs_dir()}/*",
        "kafka.Kafka",
        str(node_dir / "server.properties"),
    ]
    start_detached(argv, logs / "stdout.log", layout.pid_file(node), node_dir)


def up(layout: Layout, timeout: float = 120.0) -> str:
    """Start every node (formatting fresh storage first) and wait until all brokers answer."""
    ensure_jars()
    if shutil.which("java") is None:
        raise StackError(
            "Java is not installed: install Java 17 or newer (apt-get install default-jdk)."
        )
    if not running_nodes(layout):
        _format(layout, _cluster_id(layout))
    for node in layout.nodes:
        start_node(layout, node)
    wait_until_ready(layout, timeout)
    return layout.bootstrap_servers


def down(layout: Layout, wipe: bool = False) -> list[int]:
    """Stop every node cleanly (``wipe`` deletes the data too); return the ids that were stopped."""
    stopped = [node.node_id for node in layout.nodes if stop(layout.pid_file(node))]
    if wipe:
        shutil.rmtree(run_dir() / layout.name, ignore_errors=True)
    return stopped


async def describe(settings: KafkaSettings) -> tuple[int, int | None]:
    """Number of live brokers and the active controller's id, from a metadata request."""
    admin = admin_client(settings, request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster["brokers"]), cluster.get("controller_id")


def wait_until_ready(layout: Layout, timeout: float) -> None:
    # Refused connections are expected while the broker starts; aiokafka would log each one.
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        _wait_until_ready(layout, timeout)
    finally:
        aiokafka_log.setLevel(level)


def _wait_until_ready(layout: Layout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        dead = [n for n in layout.nodes if pid_alive(layout.pid_file(n)) is None]
        if dead:
            log = layout.log_file(dead[0])
            raise StackError(
                f"Kafka node {dead[0].node_id} exited during start-up; read {log} "
                f"(and {log.with_name('stdout.log')})."
            )
        # The metadata can name a broker before its own listener answers, and a client sent to
        # that broker then fails; ready means every listener answers too.
        closed = [n.node_id for n in layout.nodes if not port_open(HOST, n.broker_port)]
        try:
            brokers, controller = asyncio.run(describe(client_settings(layout)))
            if (
                not closed
                and brokers == len(layout.nodes)
                and controller is not None
                and controller >= 0
            ):
                return
            last_error = (
                f"{brokers} of {len(layout.nodes)} brokers, controller {controller}, "
                f"listeners closed on nodes {closed}"
            )
        except Exception as exc:
            last_error = str(exc) or type(exc).__name__
        time.sleep(1.0)
    raise StackError(
        f"Kafka at {layout.bootstrap_servers} did not become ready within {timeout:.0f}s "
        f"({last_error}); read {layout.log_file(layout.nodes[0])}."
    )


def node_by_id(layout: Layout, node_id: int) -> Node:
    return next(node for node in layout.nodes if node.node_id == node_id)


def active_controller(layout: Layout) -> int:
    """The id of the quorum's leader, the active controller (a metadata request names any
    broker in KRaft, so the quorum itself is asked)."""
    result = subprocess.run(
        tool_command(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server",
            layout.bootstrap_servers,
            "describe",
            "--status",
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "LeaderId":
            return int(value)
    raise StackError(f"the metadata quorum did not name its leader: {result.stderr[-400:]}")
