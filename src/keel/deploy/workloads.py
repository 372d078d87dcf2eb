"""The parts every keel pod shares: labels, security, the writable folders, env and probes.

Plain dicts, shaped as the Kubernetes API objects they become; `tree.py` dumps them with
PyYAML's safe dumper, so a value can never turn into YAML structure.

What keel writes on local disk, and so what must stay writable under a read-only root file
system: the home folder (`KEEL_HOME`: `keel.db` and `artifacts/` when no database URL or
artifact URL is set, `spill/` for prediction-log records the artifact store has not taken
yet, `secret.key` when `KEEL_SECRET_KEY` is unset) and `/tmp` (the booster formats' temporary
files, matplotlib's and numba's caches, which `HOME`, `MPLCONFIGDIR` and `NUMBA_CACHE_DIR`
point there).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

APP = "keel"
SERVE_PORT = 8000
UI_PORT = 8080
HOME = "/var/lib/keel"
CONFIG_DIR = "/etc/keel"
REPORTS = "/var/lib/keel-reports"
UID = 10001
SECRET = "keel-secrets"
CONFIG_MAP = "keel-config"
SERVICE_ACCOUNT = "keel"


def labels(component: str, instance: str | None = None) -> dict[str, str]:
    """The recommended labels; `instance` tells apart the loop of each model."""
    out = {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/part-of": APP,
        "app.kubernetes.io/component": component,
    }
    if instance is not None:
        out["app.kubernetes.io/instance"] = instance
    return out


def selector(component: str, instance: str | None = None) -> dict[str, str]:
    """The labels a controller selects its pods by (immutable once applied: keep them few)."""
    out = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}
    if instance is not None:
        out["app.kubernetes.io/instance"] = instance
    return out


def metadata(name: str, component: str, instance: str | None = None) -> Obj:
    return {"name": name, "labels": labels(component, instance)}


def _secret_env(name: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def base_env() -> list[Obj]:
    """Environment of every keel container: settings file, caches in /tmp, the secrets.

    KEEL_SECRET_KEY comes from the Secret so every replica pseudonymizes with the same key
    (left unset, each pod would make its own in its home folder).
    """
    return [
        {"name": "KEEL_CONFIG", "value": f"{CONFIG_DIR}/keel.toml"},
        {"name": "KEEL_HOME", "value": HOME},
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "NUMBA_CACHE_DIR", "value": "/tmp/numba"},
        _secret_env("KEEL_TOKENS", "KEEL_TOKENS"),
        _secret_env("KEEL_SECRET_KEY", "KEEL_SECRET_KEY"),
    ]


def prod_env(artifacts: str, s3_endpoint_url: str | None) -> list[Obj]:
    """What the prod overlay adds: PostgreSQL and S3, the credentials from the Secret."""
    env = [
        _secret_env("KEEL_DATABASE_URL", "KEEL_DATABASE_URL"),
        {"name": "KEEL_ARTIFACTS", "value": artifacts},
        _secret_env("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        _secret_env("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ]
    if s3_endpoint_url is not None:
        env.append({"name": "KEEL_S3_ENDPOINT_URL", "value": s3_endpoint_url})
    return env


def pod_security() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def volumes() -> list[Obj]:
    """/tmp, the home folder (an emptyDir here; the dev overlay puts it on a PVC), keel.toml."""
    return [
        {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
        {"name": "home", "emptyDir": {"sizeLimit": "4Gi"}},
        {
            "name": "config",
            "configMap": {"name": CONFIG_MAP, "items": [{"key": "keel.toml", "path": "keel.toml"}]},
        },
    ]


def mounts() -> list[Obj]:
    return [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "home", "mountPath": HOME},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Obj:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def http_probe(path: str, port: int, period_s: int, failures: int, timeout_s: int = 2) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": timeout_s,
        "failureThreshold": failures,
    }


def container(name: str, image: str, args: list[str], *, resources_: Obj, **extra: Any) -> Obj:
    """A keel container: the image's entry point is `keel`, `args` the command after it."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": base_env(),
        "resources": resources_,
        "securityContext": container_security(),
        "volumeMounts": mounts(),
        **extra,
    }


def pod_spec(containers: list[Obj], *, restart: str | None = None, grace_s: int = 30) -> Obj:
    spec: Obj = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "terminationGracePeriodSeconds": grace_s,
        "containers": containers,
        "volumes": volumes(),
    }
    if restart is not None:
        spec["restartPolicy"] = restart
    return spec


def deployment(
    name: str,
    component: str,
    pod: Obj,
    *,
    replicas: int | None,
    instance: str | None = None,
    recreate: bool = False,
) -> Obj:
    """A Deployment; `recreate` for the loop: never two of it during a rollout. `replicas`
    None leaves the count to an autoscaler (a count in the manifest would reset it at every
    `kubectl apply`)."""
    strategy: Obj = (
        {"type": "Recreate"}
        if recreate
        else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    )
    counted: Obj = {} if replicas is None else {"replicas": replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, component, instance),
        "spec": {
            **counted,
            "revisionHistoryLimit": 5,
            "strategy": strategy,
            "selector": {"matchLabels": selector(component, instance)},
            "template": {"metadata": {"labels": labels(component, instance)}, "spec": pod},
        },
    }


def service(name: str, component: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(component),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
