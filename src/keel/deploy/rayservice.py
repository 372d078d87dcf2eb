"""A KubeRay `RayService` (ray.io/v1): keel's serving app as a Ray Serve application.

The serve config imports `keel.serve.ray:build` with `{"models": [...]}`; each Ray Serve
replica builds keel's own ASGI app (batcher, follower, prediction log inside it). A Ray cluster
spans nodes, so its pods share PostgreSQL and S3 (the prod stores) through the Secret; there is
no SQLite variant.

KubeRay replaces the container's command with `ray start ...` (run by bash, which the slim
Python image has). Its default probes call `wget`, which the slim image lacks, so the probes
are given here: KubeRay keeps probes a user set.
"""

from __future__ import annotations

from keel.deploy.spec import DeploySpec
from keel.deploy.workloads import (
    Obj,
    base_env,
    container_security,
    http_probe,
    metadata,
    mounts,
    pod_security,
    prod_env,
    resources,
    volumes,
)

SERVE_PORT = 8000
DASHBOARD_PORT = 8265
AGENT_PORT = 52365


def serve_config(models: tuple[str, ...]) -> str:
    """Ray Serve's config (serveConfigV2 is a YAML document held in a string)."""
    import yaml

    doc = {
        "applications": [
            {
                "name": "keel",
                "import_path": "keel.serve.ray:build",
                "route_prefix": "/",
                "args": {"models": list(models)},
            }
        ]
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def _ray_container(spec: DeploySpec, name: str, *, head: bool) -> Obj:
    ports = [{"name": "serve", "containerPort": SERVE_PORT, "protocol": "TCP"}]
    if head:
        ports = [
            {"name": "gcs", "containerPort": 6379, "protocol": "TCP"},
            {"name": "dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
            {"name": "client", "containerPort": 10001, "protocol": "TCP"},
            *ports,
        ]
        probe_path, probe_port = "/api/gcs_healthz", DASHBOARD_PORT
    else:
        probe_path, probe_port = "/api/local_raylet_healthz", AGENT_PORT
    out: Obj = {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": ports,
        "env": base_env() + prod_env(spec.artifacts, spec.s3_endpoint_url),
        "resources": resources("1", "2Gi", "2", "4Gi")
        if head
        else resources("2", "4Gi", "2", "4Gi"),
        "securityContext": container_security(),
        "volumeMounts": mounts(),
        "livenessProbe": http_probe(probe_path, probe_port, period_s=10, failures=6, timeout_s=5),
        "readinessProbe": http_probe(probe_path, probe_port, period_s=10, failures=6, timeout_s=5),
    }
    if not head:
        # Serve's own health route on the replica's proxy: out of rotation until it answers
        out["readinessProbe"] = http_probe("/-/healthz", SERVE_PORT, period_s=5, failures=3)
    return out


def _template(spec: DeploySpec, name: str, *, head: bool) -> Obj:
    component = "ray-head" if head else "ray-worker"
    return {
        "metadata": {"labels": metadata("keel", component)["labels"]},
        "spec": {
            "serviceAccountName": "keel",
            "automountServiceAccountToken": False,
            "securityContext": pod_security(),
            "containers": [_ray_container(spec, name, head=head)],
            "volumes": volumes(),
        },
    }


def ray_service(spec: DeploySpec) -> Obj:
    """The RayService: a head (no Serve replicas of its own: num-cpus 0) and autoscaled workers."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata("keel", "serve"),
        "spec": {
            "serveConfigV2": serve_config(spec.models),
            "rayClusterConfig": {
                "rayVersion": spec.ray_version,
                "enableInTreeAutoscaling": True,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                    "template": _template(spec, "ray-head", head=True),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "serve",
                        "replicas": spec.min_replicas,
                        "minReplicas": spec.min_replicas,
                        "maxReplicas": spec.max_replicas,
                        "rayStartParams": {},
                        "template": _template(spec, "ray-worker", head=False),
                    }
                ],
            },
        },
    }
