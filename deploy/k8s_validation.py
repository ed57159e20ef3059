"""Offline validation of the Kubernetes manifests: render each overlay with kustomize, then
validate every object against its schema (Kubernetes objects with ``kubernetes-validate`` in
strict mode; Strimzi and CloudNativePG objects against their CRDs' schemas). An object whose
kind has no schema is an error, not a warning."""

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
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


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
