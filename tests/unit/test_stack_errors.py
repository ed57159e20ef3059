"""The local stack explains what is wrong in one sentence instead of hanging or crashing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy.local import kafka_broker, keycloak, packages, postgres
from deploy.local.errors import StackError
from deploy.local.kafka_broker import Layout, Node

pytestmark = pytest.mark.unit


def test_a_taken_port_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        layout = Layout("squatted", (Node(1, port, port + 1),))

        with pytest.raises(StackError, match=f"Port {port} on 127.0.0.1 is taken"):
            kafka_broker.start_node(layout, layout.nodes[0])


def test_a_port_taken_from_keycloak_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setattr(keycloak, "PORT", port)

        with pytest.raises(StackError, match=f"Port {port} on 127.0.0.1 is taken"):
            keycloak.up()


def test_an_unresolvable_keycloak_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    monkeypatch.setattr(keycloak, "ARTIFACT", "org.keycloak:keycloak-quarkus-dist:0.0.0-none:zip")
    monkeypatch.setenv("MAVEN_OPTS", "-Dmaven.repo.local=" + str(tmp_path / "m2"))

    with pytest.raises(StackError, match=r"Maven could not fetch org\.keycloak"):
        keycloak.ensure_distribution()


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    monkeypatch.setattr(kafka_broker.shutil, "which", lambda name: None if name == "java" else "/x")

    with pytest.raises(StackError, match="Java is not installed"):
        kafka_broker.ensure_jars()


def test_unresolvable_kafka_jars_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    broken_pom = tmp_path / "pom.xml"
    broken_pom.write_text(
        kafka_broker.POM.read_text().replace(
            "<kafka.version>4.3.1</kafka.version>", "<kafka.version>0.0.0-none</kafka.version>"
        )
    )
    monkeypatch.setattr(kafka_broker, "POM", broken_pom)
    monkeypatch.setenv("MAVEN_OPTS", "-Dmaven.repo.local=" + str(tmp_path / "m2"))

    with pytest.raises(StackError, match="Maven could not resolve Apache Kafka"):
        kafka_broker.ensure_jars()


def test_postgres_install_without_root_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "_installed", lambda: False)
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)

    with pytest.raises(StackError, match=r"needs postgresql, and installing them needs root: run"):
        postgres.install()
