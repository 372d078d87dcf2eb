"""The Kubernetes objects of one keel installation: serving, the loop, the dashboard, jobs.

Each builder returns a complete API object (a dict). `base_resources` is the whole `base/`
directory, valid on its own; `overlays.py` says what `dev/` and `prod/` change.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from keel.deploy.spec import DeploySpec
from keel.deploy.workloads import (
    CONFIG_MAP,
    HOME,
    REPORTS,
    SERVE_PORT,
    SERVICE_ACCOUNT,
    UI_PORT,
    Obj,
    container,
    deployment,
    http_probe,
    labels,
    metadata,
    pod_spec,
    resources,
    selector,
    service,
)

SERVE = "keel-serve"
UI = "keel-ui"
REPORT = "keel-report"
REPORTS_PVC = "keel-reports"
# keel's Prometheus counter of answered requests (keel.serve.metrics)
REQUESTS_METRIC = "keel_requests_total"


def loop_name(model: str) -> str:
    return f"keel-loop-{model}"


def migration_name(image: str) -> str:
    """One Job per image: a Job's pod template cannot change once applied, a new name can."""
    return f"keel-db-upgrade-{hashlib.sha256(image.encode()).hexdigest()[:8]}"


def keel_toml(*, home: str = HOME) -> str:
    """The settings file in the ConfigMap (keys of `keel.store.Settings`).

    Only what is the same in every overlay; stores and secrets come from the environment.
    Predict needs a token ('predict' scope) as soon as KEEL_TOKENS is set, which it is.
    """
    values: dict[str, str | int | float | bool] = {
        "home": home,
        "poll_interval_s": 2.0,
        "flush_interval_s": 1.0,
        "window_s": 3600,
        "load_timeout_s": 120.0,
        "open_predict": False,
    }
    lines = ["# keel settings (keel.store.Settings); KEEL_* environment variables override them"]
    for key, value in values.items():
        # a TOML basic string is a JSON string; booleans and numbers are spelled alike
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def config_map() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(CONFIG_MAP, "config"),
        "data": {"keel.toml": keel_toml()},
    }


def service_account() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(SERVICE_ACCOUNT, "serviceaccount"),
        "automountServiceAccountToken": False,
    }


def serve_deployment(spec: DeploySpec) -> Obj:
    """`keel serve MODELS` on every address, models from the registry at start."""
    args = ["serve", *spec.models, "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
    main = container(
        "serve",
        spec.image,
        args,
        resources_=resources("1", "1Gi", "2", "2Gi"),
        ports=[{"name": "http", "containerPort": SERVE_PORT, "protocol": "TCP"}],
        # /readyz answers 503 until every model's production version is loaded and warm:
        # 60 x 5 s covers load_timeout_s (120 s) twice over before the kubelet gives up
        startupProbe=http_probe("/readyz", SERVE_PORT, period_s=5, failures=60),
        readinessProbe=http_probe("/readyz", SERVE_PORT, period_s=5, failures=2),
        livenessProbe=http_probe("/healthz", SERVE_PORT, period_s=10, failures=3, timeout_s=3),
        # the endpoints controller needs a moment to take the pod out of the Service
        lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}},
    )
    # no count: the HPA (or KEDA's) owns it, from min_replicas up; dev sets 1 and has no HPA
    dep = deployment(SERVE, "serve", pod_spec([main]), replicas=None)
    dep["spec"]["template"]["metadata"]["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(SERVE_PORT),
        "prometheus.io/path": "/metrics",
    }
    return dep


def pod_disruption_budget() -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(SERVE, "serve"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("serve")}},
    }


def horizontal_autoscaler(spec: DeploySpec) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(SERVE, "serve"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVE},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def scaled_object(spec: DeploySpec, *, requests_per_pod: int = 200) -> Obj:
    """KEDA: the request rate from Prometheus (keel's /metrics scraped), and CPU as a floor.

    Rendered instead of the HPA: KEDA makes its own HPA, and two on one Deployment fight.
    """
    query = f"sum(rate({REQUESTS_METRIC}[2m]))"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(SERVE, "serve"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVE},
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": spec.prometheus_url,
                        "query": query,
                        "threshold": str(requests_per_pod),
                    },
                },
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
            ],
        },
    }


def loop_deployment(spec: DeploySpec, model: str) -> Obj:
    """`keel loop MODEL`: one pod, replaced (never rolled) so two loops never overlap; the
    loop's lease in the database guards the rest. Retraining runs in a child process."""
    main = container(
        "loop",
        spec.image,
        ["loop", model, "--interval", "60"],
        resources_=resources("250m", "1Gi", "2", "4Gi"),
    )
    return deployment(
        loop_name(model), "loop", pod_spec([main]), replicas=1, instance=model, recreate=True
    )


def ui_deployment(spec: DeploySpec) -> Obj:
    """`keel ui`: the dashboard alone, with no model loaded (it has no health route: TCP)."""
    tcp = {"tcpSocket": {"port": UI_PORT}, "periodSeconds": 10, "failureThreshold": 3}
    main = container(
        "ui",
        spec.image,
        ["ui", "--host", "0.0.0.0", "--port", str(UI_PORT)],
        resources_=resources("100m", "512Mi", "1", "1Gi"),
        ports=[{"name": "http", "containerPort": UI_PORT, "protocol": "TCP"}],
        readinessProbe=tcp,
        livenessProbe=tcp,
    )
    return deployment(UI, "ui", pod_spec([main]), replicas=1)


def migration_job(spec: DeploySpec) -> Obj:
    main = container(
        "db-upgrade",
        spec.image,
        ["db", "upgrade"],
        resources_=resources("100m", "512Mi", "1", "1Gi"),
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(migration_name(spec.image), "migrate"),
        "spec": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels("migrate")},
                "spec": pod_spec([main], restart="OnFailure"),
            },
        },
    }


def report_script(models: tuple[str, ...]) -> str:
    """The shell line of the report CronJob (model names are DNS-1123 labels: no quoting issue)."""
    names = " ".join(models)
    return (
        'set -e; day="$(date -u +%Y-%m-%d)"; '
        f"for m in {names}; do "
        f'keel monitor report "$m" -o "{REPORTS}/$m-$day.html"; done'
    )


def report_cron_job(spec: DeploySpec) -> Obj:
    """`keel monitor report` per model on a schedule, into a volume of its own."""
    main = container(
        "report",
        spec.image,
        [report_script(spec.models)],
        resources_=resources("250m", "1Gi", "1", "2Gi"),
        command=["/bin/sh", "-c"],
    )
    main["volumeMounts"].append({"name": "reports", "mountPath": REPORTS})
    pod = pod_spec([main], restart="OnFailure")
    pod["volumes"].append({"name": "reports", "persistentVolumeClaim": {"claimName": REPORTS_PVC}})
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(REPORT, "report"),
        "spec": {
            "schedule": spec.report_schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 1800,
                    "template": {"metadata": {"labels": labels("report")}, "spec": pod},
                }
            },
        },
    }


def claim(name: str, component: str, size: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(name, component),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def network_policies(spec: DeploySpec) -> list[Obj]:
    """Deny by default; DNS, PostgreSQL and S3 out; serving and the dashboard in on their port."""
    out_ports = [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 443}]
    if spec.s3_endpoint_url is not None:
        parts = urlsplit(spec.s3_endpoint_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if port not in (5432, 443):
            out_ports.append({"protocol": "TCP", "port": port})
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    everyone = {"app.kubernetes.io/name": "keel"}
    policies: list[Obj] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("keel-default", "network"),
            "spec": {
                "podSelector": {"matchLabels": everyone},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [{"ports": dns}, {"ports": out_ports}],
            },
        }
    ]
    for name, component, port in (
        ("keel-serve-in", "serve", SERVE_PORT),
        ("keel-ui-in", "ui", UI_PORT),
    ):
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": metadata(name, "network"),
                "spec": {
                    "podSelector": {"matchLabels": selector(component)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
                },
            }
        )
    return policies


def base_resources(spec: DeploySpec) -> dict[str, Obj]:
    """Every object of `base/`, by file name, in the order `kubectl apply` should meet them."""
    files: dict[str, Obj] = {
        "serviceaccount.yaml": service_account(),
        "configmap.yaml": config_map(),
        "db-upgrade-job.yaml": migration_job(spec),
        "serve-deployment.yaml": serve_deployment(spec),
        "serve-service.yaml": service(SERVE, "serve", SERVE_PORT),
        "serve-pdb.yaml": pod_disruption_budget(),
    }
    if spec.keda:
        files["serve-scaledobject.yaml"] = scaled_object(spec)
    else:
        files["serve-hpa.yaml"] = horizontal_autoscaler(spec)
    for model in spec.models:
        files[f"loop-{model}-deployment.yaml"] = loop_deployment(spec, model)
    files["ui-deployment.yaml"] = ui_deployment(spec)
    files["ui-service.yaml"] = service(UI, "ui", UI_PORT)
    files["reports-pvc.yaml"] = claim(REPORTS_PVC, "report", "5Gi")
    files["report-cronjob.yaml"] = report_cron_job(spec)
    for policy in network_policies(spec):
        files[f"networkpolicy-{policy['metadata']['name'].removeprefix('keel-')}.yaml"] = policy
    return files
