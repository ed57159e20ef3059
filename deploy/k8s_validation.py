"""Offline validation of the Kubernetes manifests: render each overlay with kustomize, then
validate every object against its schema (Kubernetes objects with ``kubernetes-validate`` in
strict mode; Strimzi, CloudNativePG and Prometheus Operator objects against their CRDs'
schemas). An object whose kind has no schema is an error, not a warning. Then the operations
rules every workload follows (:func:`policy_problems`)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from deploy.local.errors import StackError
from deploy.local.paths import REPO_ROOT, berlian_home

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.6.0"
KUBERNETES_VERSION = "1.33.0"


def crd_dir() -> Path:
    """The operators' CRDs, kept beside the checkout (never copied into it)."""
    return Path(os.environ.get("BERLIAN_CRD_DIR", str(REPO_ROOT.parent / "shared" / "crds")))


def kustomize() -> Path:
    """The kustomize binary, built once with ``go install`` into the machine's cache."""
    binary = berlian_home() / "bin" / "kustomize"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise StackError("Go is not installed, so kustomize cannot be built: install golang.")
    binary.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["go", "install", KUSTOMIZE],
        env={**os.environ, "GOBIN": str(binary.parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"go install {KUSTOMIZE} failed: {result.stderr.strip()[-400:]}")
    return binary


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kustomize()), "build", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"kustomize build {directory} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=_Yaml12Loader) if doc]


class _Yaml12Loader(yaml.SafeLoader):
    """kustomize writes YAML 1.2, where an unquoted date stays a string (as the API server reads
    it); PyYAML's 1.1 rules would turn ``targetTime: 2025-03-01 00:00:00+07`` into a datetime."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _strict(schema: Any) -> Any:
    """The CRD schema refusing unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in strict
            and "additionalProperties" not in strict
            and not strict.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def crd_schemas(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict openAPIV3Schema, from every CRD file in ``directory``."""
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def validate(
    objects: list[dict[str, Any]], crds: dict[tuple[str, str], dict[str, Any]]
) -> list[str]:
    """Every problem of every object, named by kind and name; empty when all are valid."""
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        if key in crds:
            validator = jsonschema.Draft7Validator(crds[key])
            problems += [f"{where}: {error.message}" for error in validator.iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {key[0]} {key[1]}")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message}")
    return problems


WORKLOADS = ("Deployment", "Job", "CronJob")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def policy_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What breaks the operations rules, by kind/name and container: every workload runs as
    non-root from a pinned image (no ``latest``, no missing tag), each container with requests
    and limits, a read-only root filesystem, no privilege escalation and no capabilities; every
    Deployment's containers have liveness and readiness probes."""
    problems = []
    for workload in objects:
        if workload.get("kind") not in WORKLOADS:
            continue
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        if (pod.get("securityContext") or {}).get("runAsNonRoot") is not True:
            problems.append(f"{where}: the pod does not require a non-root user")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            named = f"{where} container {container.get('name')}"
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
            if tag in ("", "latest"):
                problems.append(f"{named}: image {image!r} is not pinned to a version")
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                    problems.append(f"{named}: no cpu and memory {part}")
            security = container.get("securityContext") or {}
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{named}: the root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{named}: privilege escalation is allowed")
            if (security.get("capabilities") or {}).get("drop") != ["ALL"]:
                problems.append(f"{named}: capabilities are not all dropped")
            if security.get("privileged"):
                problems.append(f"{named}: runs privileged")
        if workload["kind"] == "Deployment":
            for container in pod.get("containers", []):
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        problems.append(f"{where} container {container.get('name')}: no {probe}")
    return problems
