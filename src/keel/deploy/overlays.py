"""The kustomize overlays: what `dev/` and `prod/` change in `base/`.

Patches are strategic-merge patches, the kind `kubectl kustomize` merges by each list's key
(containers and volumes by `name`): a patch names only what it changes.

- `dev/`: one serving pod; the home folder of every pod on one PersistentVolumeClaim, where
  SQLite (`keel.db`) and the artifacts live (no database URL, no S3). A ReadWriteOnce volume is
  shared by pods on one node only: dev is for a one-node cluster (kind, minikube, k3d). No
  autoscaler and no disruption budget (one pod cannot be kept through a drain).
- `prod/`: PostgreSQL (`KEEL_DATABASE_URL`) and S3 (`KEEL_ARTIFACTS=s3://...`, the AWS
  credentials) for every pod, from the Secret; the base's autoscaler.
"""

from __future__ import annotations

from keel.deploy.spec import DeploySpec
from keel.deploy.workloads import Obj, prod_env

HOME_PVC = "keel-home"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"


def _pod(obj: Obj) -> Obj:
    """The pod spec inside a Deployment, Job or CronJob."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def _with_pod(obj: Obj, pod_patch: Obj) -> Obj:
    """A patch naming `obj` that merges `pod_patch` into its pod spec."""
    inner: Obj = {"template": {"spec": pod_patch}}
    if obj["kind"] == "CronJob":
        inner = {"jobTemplate": {"spec": inner}}
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": inner,
    }


def workloads(base: dict[str, Obj]) -> list[Obj]:
    """The objects that run pods, in the base's order."""
    return [o for o in base.values() if o["kind"] in ("Deployment", "Job", "CronJob")]


def _delete(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": obj["metadata"]["name"]},
        "$patch": "delete",
    }


def kustomization(resources: list[str], patches: list[str]) -> Obj:
    out: Obj = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": resources}
    if patches:
        out["patches"] = [{"path": p} for p in patches]
    return out


def dev_overlay(base: dict[str, Obj]) -> dict[str, Obj]:
    """`dev/`: files by name (patches under `patches/`), its kustomization included."""
    home = {
        "name": "home",
        "emptyDir": None,  # null removes the base's emptyDir in a strategic merge
        "persistentVolumeClaim": {"claimName": HOME_PVC},
    }
    files: dict[str, Obj] = {
        "home-pvc.yaml": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": HOME_PVC,
                "labels": {"app.kubernetes.io/name": "keel", "app.kubernetes.io/part-of": "keel"},
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
            },
        }
    }
    for obj in workloads(base):
        patch = _with_pod(obj, {"volumes": [home]})
        if obj["metadata"]["name"] == "keel-serve":
            patch["spec"] = {"replicas": 1, **patch["spec"]}
        files[f"patches/{obj['metadata']['name']}.yaml"] = patch
    for obj in base.values():
        if obj["kind"] in ("HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget"):
            files[f"patches/delete-{obj['kind'].lower()}.yaml"] = _delete(obj)
    patches = sorted(p for p in files if p.startswith("patches/"))
    files["kustomization.yaml"] = kustomization(["../base", "home-pvc.yaml"], patches)
    return files


def prod_overlay(base: dict[str, Obj], spec: DeploySpec) -> dict[str, Obj]:
    """`prod/`: PostgreSQL and S3 settings added to every container of every workload."""
    env = prod_env(spec.artifacts, spec.s3_endpoint_url)
    files: dict[str, Obj] = {}
    for obj in workloads(base):
        containers = [{"name": c["name"], "env": env} for c in _pod(obj)["containers"]]
        files[f"patches/{obj['metadata']['name']}.yaml"] = _with_pod(
            obj, {"containers": containers}
        )
    files["kustomization.yaml"] = kustomization(["../base"], sorted(files))
    return files
