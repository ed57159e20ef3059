"""The Kubernetes manifests render, validate against their schemas, and follow the rules: the
overlays describe everything the services need (the Kafka cluster, the database with its
backups, scraping and alerting, the console behind TLS), an operator applies them as
they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.k8s_validation import (
    K8S_DIR,
    crd_dir,
    crd_schemas,
    pod_spec,
    policy_problems,
    render,
    validate,
)
from deploy.kafka_acls import CLUSTER_RESOURCE, Grant, grants, reader_grants
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit
SERVICES = ("enrolment", "verification", "billing", "claims")
# The services, the audit application and the officers' console (HTTP only).
DEPLOYMENTS = (*SERVICES, "audit-web", "console")
FIXTURES = Path(__file__).parent / "fixtures"
KINDS = {
    "ConfigMap", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "NetworkPolicy", "Ingress", "Job", "CronJob",
    "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser",
    "Cluster", "ScheduledBackup",
    "ServiceMonitor", "PodMonitor", "PrometheusRule",
}  # fmt: skip
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


def test_the_overlay_holds_every_kind_an_operator_needs(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    assert {o["kind"] for o in objects} == KINDS


def test_a_broken_manifest_is_refused(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    problems = validate(render(FIXTURES / "broken"), crds)

    def refused(where: str, what: str) -> bool:
        return any(p.startswith(where) and what in p for p in problems)

    assert refused("Deployment/broken", "two")
    assert refused("Deployment/misspelt", "livenessProbes")
    assert refused("KafkaTopic/broken", "twelve")
    assert refused("KafkaTopic/broken", "replicationFactor")
    assert "Unheard/broken: no schema for example.org/v1 Unheard" in problems
    # One broken object of each kind the overlays gained.
    assert refused("Kafka/broken", "scram-sha-256")
    assert refused("KafkaNodePool/broken", "three")
    assert refused("ScheduledBackup/broken", "scheduel")
    assert refused("Backup/broken", "tape")
    assert refused("Cluster/broken", "destinationPath")
    assert refused("ServiceMonitor/broken", "endpoint")
    assert refused("PodMonitor/broken", "often")
    assert refused("PrometheusRule/broken", "expression")
    assert refused("Ingress/broken", "secret")


def test_the_restore_objects_are_valid(crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    objects = render(K8S_DIR / "restore")

    assert validate(objects, crds) == []
    [backup] = of_kind(objects, "Backup")
    [cluster] = of_kind(objects, "Cluster")
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"] == "berlian-db"
    [source] = cluster["spec"]["externalClusters"]
    assert cluster["spec"]["bootstrap"]["recovery"]["source"] == source["name"]


def test_every_workload_follows_the_operations_rules(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    assert policy_problems(objects) == []


def test_an_unsafe_workload_is_named_for_each_rule_it_breaks(
    crds: dict[tuple[str, str], dict[str, Any]],
) -> None:
    objects = render(FIXTURES / "unsafe")
    assert validate(objects, crds) == []  # valid objects: what fails is the policy

    problems = set(policy_problems(objects))

    latest, untagged = "Deployment/unsafe container latest", "Deployment/unsafe container untagged"
    assert "Deployment/unsafe: the pod does not require a non-root user" in problems
    assert f"{latest}: image 'registry.example.org/berlian:latest' is not pinned to a version" in (
        problems
    )
    assert (
        f"{untagged}: image 'registry.example.org:5000/berlian' is not pinned to a version"
        in problems
    )
    assert f"{latest}: no cpu and memory requests" in problems
    assert f"{untagged}: no cpu and memory limits" in problems
    assert f"{latest}: the root filesystem is writable" in problems
    assert f"{latest}: privilege escalation is allowed" in problems
    assert f"{latest}: capabilities are not all dropped" in problems
    assert f"{latest}: runs privileged" in problems
    assert f"{latest}: no livenessProbe" in problems
    assert f"{latest}: no readinessProbe" in problems
    assert "CronJob/unsafe container writable: the root filesystem is writable" in problems
    assert not any(p.startswith(untagged) and "Probe" in p for p in problems)


def test_deployments_probe_their_health_and_spread_over_zones_and_nodes(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    assert sorted(deployments) == sorted(DEPLOYMENTS)
    for name, deployment in deployments.items():
        pod = pod_spec(deployment)
        [main] = pod["containers"]
        if name in SERVICES:
            assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
        assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in spread.values():
            assert (
                constraint["labelSelector"]["matchLabels"]
                == (deployment["spec"]["selector"]["matchLabels"])
            )


def test_kafka_runs_in_kraft_mode_with_the_contracts_replication_and_the_clients_listener(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    [kafka] = of_kind(objects, "Kafka")
    pools = {p["metadata"]["name"]: p for p in of_kind(objects, "KafkaNodePool")}
    assert {tuple(p["spec"]["roles"]) for p in pools.values()} == {("controller",), ("broker",)}
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    config = kafka["spec"]["kafka"]["config"]
    if name == "prod":
        assert pools["brokers"]["spec"]["replicas"] == pools["controllers"]["spec"]["replicas"] == 3
        assert (config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)
        assert kafka["spec"]["kafka"]["rack"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert config["auto.create.topics.enable"] is False
    # The listener the clients' settings name: TLS on 9093, SCRAM-SHA-512, ACLs enforced.
    client = config_of(objects)
    host, port = client["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    [listener] = [lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["port"] == int(port)]
    assert listener["tls"] is True
    assert client["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    mechanism = client["KAFKA_SASL_MECHANISM"].lower()
    assert listener["authentication"]["type"] == mechanism
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    for user in of_kind(objects, "KafkaUser"):
        assert user["spec"]["authentication"]["type"] == mechanism
    topics_and_users = of_kind(objects, "KafkaTopic") + of_kind(objects, "KafkaUser")
    assert {o["metadata"]["labels"]["strimzi.io/cluster"] for o in topics_and_users} == {
        kafka["metadata"]["name"]
    }


def test_the_database_is_backed_up_every_night_to_its_archive(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    [cluster] = of_kind(objects, "Cluster")
    [nightly] = of_kind(objects, "ScheduledBackup")
    assert nightly["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert nightly["spec"]["method"] == "barmanObjectStore"
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    assert store["wal"]["encryption"] == store["data"]["encryption"] == "AES256"
    assert cluster["spec"]["backup"]["retentionPolicy"] == "30d"


def test_every_service_is_scraped_and_the_alert_rules_are_loaded(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    monitors = {m["metadata"]["name"]: m for m in of_kind(objects, "ServiceMonitor")}
    assert sorted(monitors) == sorted(SERVICES)
    for name, monitor in monitors.items():
        labels = monitor["spec"]["selector"]["matchLabels"]
        assert labels.items() <= services[name]["metadata"]["labels"].items()
        ports = {p["name"] for p in services[name]["spec"]["ports"]}
        assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
            (p, "/metrics") for p in ports
        ]
    [rules] = of_kind(objects, "PrometheusRule")
    assert sum(len(g["rules"]) for g in rules["spec"]["groups"]) > 0


def test_the_audit_application_is_reached_only_by_the_console_inside_the_cluster(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    assert "audit-web" not in {i["metadata"]["name"] for i in of_kind(objects, "Ingress")}
    [web] = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] == "audit-web"]
    assert pod_spec(web)["containers"][0]["args"][:2] == ["audit", "web"]
    [service] = [s for s in of_kind(objects, "Service") if s["metadata"]["name"] == "audit-web"]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    [policy] = [
        p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "audit-web"
    ]
    [admitted] = policy["spec"]["ingress"]
    assert admitted["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "console"}}}
    ]


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
        DEPLOYMENTS
    )
    assert sorted(p["metadata"]["name"] for p in of_kind(objects, "PodDisruptionBudget")) == sorted(
        DEPLOYMENTS
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
        pod = pod_spec(workload)
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            command = container["args"][0]
            if command in ("migrate", "checkpoint", "console"):  # PostgreSQL only; HTTP only
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


def test_the_console_is_served_over_tls_and_reaches_only_the_services_and_the_provider(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    [ingress] = [i for i in of_kind(objects, "Ingress") if i["metadata"]["name"] == "console"]
    [tls] = ingress["spec"]["tls"]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in tls["hosts"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "console"
    [console] = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"] == "console"]
    env = {
        e["name"]: e.get("value")
        for e in console["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["BERLIAN_CONSOLE_URL"] == f"https://{rule['host']}"
    # Its sessions live in its process: one replica, never two side by side in a rollout.
    assert console["spec"]["replicas"] == 1
    assert console["spec"]["strategy"] == {"type": "Recreate"}
    assert env["BERLIAN_CONSOLE_AUDIT_URL"] == "http://audit-web"  # the audit API, in-cluster
    [policy] = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "console"]
    reached = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert reached == {8000, 53, 443}  # no Kafka, no database


def test_no_serving_container_holds_the_administrative_database_login(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    """The migrations (init containers and jobs) need the administrative login; a container
    that serves requests logs in as its own role and is given only the database server."""
    _, objects = overlay
    for deployment in of_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            secrets = {
                (ref["name"], ref["key"])
                for variable in container.get("env", [])
                if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))
            }
            name = f"{deployment['metadata']['name']}/{container['name']}"
            assert ("berlian-database", "admin-url") not in secrets, name
    assert "@" not in config_of(objects)["DATABASE_SERVER_URL"]  # no credentials in a config map


# Whose events each service decides on (shared/projection/freshness.py): it asks them first.
PRODUCERS_ASKED = {
    "verification": {"enrolment", "billing"},
    "billing": {"enrolment", "billing"},
    "claims": {"enrolment", "billing"},
}


def test_each_consumer_reaches_the_producers_it_asks_before_deciding(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = overlay
    config = config_of(objects)
    for service in SERVICES:
        assert config[f"{service.upper()}_URL"] == f"http://{service}"
    policies = {p["metadata"]["name"]: p for p in of_kind(objects, "NetworkPolicy")}
    for consumer, producers in PRODUCERS_ASKED.items():
        reached = {
            name
            for rule in policies[consumer]["spec"]["egress"]
            for peer in rule.get("to", [])
            for selector in peer.get("podSelector", {}).get("matchExpressions", [])
            if selector["key"] == "app.kubernetes.io/name"
            and rule["ports"] == [{"protocol": "TCP", "port": 8000}]
            for name in selector["values"]
        }
        assert reached == producers, consumer
