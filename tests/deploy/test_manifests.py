"""The Kubernetes manifests render, validate against their schemas, and follow the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.k8s_validation import K8S_DIR, crd_dir, crd_schemas, render, validate
from deploy.kafka_acls import CLUSTER_RESOURCE, Grant, grants, reader_grants
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit
SERVICES = ("enrolment", "verification", "billing", "claims")
OVERLAYS = {"dev": 3, "prod": 12}  # overlay -> partitions of each topic


@pytest.fixture(scope="module")
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    return crd_schemas(crd_dir())


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name = str(request.param)
    return name, render(K8S_DIR / "overlays" / name)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_every_rendered_object_is_valid(
    overlay: tuple[str, list[dict[str, Any]]], crds: dict[tuple[str, str], dict[str, Any]]
) -> None:
    _, objects = overlay
    assert validate(objects, crds) == []


def test_a_broken_manifest_is_refused(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    problems = validate(render(Path(__file__).parent / "fixtures" / "broken"), crds)

    assert any(p.startswith("Deployment/broken") and "two" in p for p in problems)
    assert any(p.startswith("Deployment/misspelt") and "livenessProbes" in p for p in problems)
    assert any(p.startswith("KafkaTopic/broken") and "twelve" in p for p in problems)
    assert any(p.startswith("KafkaTopic/broken") and "replicationFactor" in p for p in problems)
    assert "Unheard/broken: no schema for example.org/v1 Unheard" in problems


def test_deployments_have_probes_limits_and_run_locked_down(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    deployments = of_kind(objects, "Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(SERVICES)
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= set(container["resources"])
        [main] = pod["containers"]
        assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_autoscaling_never_exceeds_the_partitions(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    partitions = {
        t["metadata"]["name"]: t["spec"]["partitions"] for t in of_kind(objects, "KafkaTopic")
    }
    assert set(partitions.values()) == {OVERLAYS[name]}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        service = hpa["spec"]["scaleTargetRef"]["name"]
        assert hpa["spec"]["maxReplicas"] <= partitions[f"berlian.{service}.events"]


def test_each_service_has_a_network_policy_a_budget_and_one_kafka_user_writing_only_its_topics(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    assert sorted(p["metadata"]["name"] for p in of_kind(objects, "NetworkPolicy")) == sorted(
        SERVICES
    )
    assert sorted(p["metadata"]["name"] for p in of_kind(objects, "PodDisruptionBudget")) == sorted(
        SERVICES
    )
    users = {u["metadata"]["name"]: declared_grants(u) for u in of_kind(objects, "KafkaUser")}
    assert sorted(users) == sorted([*SERVICES, "auditor"])
    settings = KafkaSettings(topic_prefix=config_of(objects)["TOPIC_PREFIX"])
    for service in SERVICES:
        assert users[service] == grants(settings, service)
        writable = {g.name for g in users[service] if "Write" in g.operations}
        assert writable == {f"berlian.{service}.events", f"berlian.{service}.dlq"}
    assert users["auditor"] == reader_grants(settings)


def declared_grants(user: dict[str, Any]) -> list[Grant]:
    return [
        Grant(
            acl["resource"]["type"],
            acl["resource"].get("name", CLUSTER_RESOURCE),
            acl["resource"].get("patternType", "literal"),
            tuple(acl["operations"]),
        )
        for acl in user["spec"]["authorization"]["acls"]
    ]


def test_every_kafka_client_logs_in_over_tls_as_its_own_principal(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    config = config_of(objects)
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    ca_dir = config["KAFKA_SSL_CAFILE"].rsplit("/", 1)[0]
    for workload in objects:
        if workload["kind"] not in ("Deployment", "Job", "CronJob"):
            continue
        spec = workload["spec"]
        pod = (spec["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else spec)["template"][
            "spec"
        ]
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            command = container["args"][0]
            if command == "migrate":  # PostgreSQL only
                assert "KAFKA_SASL_USERNAME" not in env
                continue
            expected = container["args"][1] if command == "run" else "auditor"
            assert env["KAFKA_SASL_USERNAME"]["value"] == expected, container["name"]
            password = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert password == {"name": expected, "key": "password"}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            [volume] = [v for v in pod["volumes"] if v["name"] == mounts[ca_dir]]
            assert volume["secret"]["secretName"] == "berlian-cluster-ca-cert"
        for container in pod.get("initContainers", []):
            assert not any(e["name"].startswith("KAFKA_SASL") for e in container.get("env", []))


def config_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    [config] = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == "berlian-config"
    ]
    data: dict[str, str] = config["data"]
    return data


def test_topics_keep_the_contract_settings(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    for topic in of_kind(objects, "KafkaTopic"):
        config = topic["spec"]["config"]
        assert (config["retention.ms"], config["cleanup.policy"]) == (-1, "delete")
        # What the services' size check assumes (KAFKA_MAX_MESSAGE_BYTES, by default).
        assert config["max.message.bytes"] == KafkaSettings().kafka_max_message_bytes
        if name == "prod":
            assert (topic["spec"]["replicas"], config["min.insync.replicas"]) == (3, 2)
