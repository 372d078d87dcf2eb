"""What `render_tree` writes: the objects, their security, keel.toml and the RayService."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from keel.deploy import DeployError, deploy_spec, keel_toml, render_tree, write_tree
from keel.store import Settings

IMAGE = "ghcr.io/acme/keel:0.1.0"


def objects(files: dict[str, str], prefix: str) -> dict[str, Any]:
    return {
        path: yaml.safe_load(text)
        for path, text in files.items()
        if path.startswith(prefix) and not path.endswith("kustomization.yaml")
    }


def pod_specs(objs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for obj in objs.values():
        if obj["kind"] in ("Deployment", "Job"):
            out.append(obj["spec"]["template"]["spec"])
        elif obj["kind"] == "CronJob":
            out.append(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return out


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return objects(render_tree(deploy_spec(image=IMAGE, models="fraud,churn")), "base/")


def test_base_holds_every_object_the_issue_names(base: dict[str, Any]) -> None:
    """Serving (Deployment, Service, PDB, HPA), a loop per model, the UI, the migration Job,
    the report CronJob, keel.toml and the network policies."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in base.values())

    assert ("Deployment", "keel-serve") in kinds
    assert ("Service", "keel-serve") in kinds
    assert ("PodDisruptionBudget", "keel-serve") in kinds
    assert ("HorizontalPodAutoscaler", "keel-serve") in kinds
    assert ("Deployment", "keel-loop-fraud") in kinds
    assert ("Deployment", "keel-loop-churn") in kinds
    assert ("Deployment", "keel-ui") in kinds
    assert ("Service", "keel-ui") in kinds
    assert ("CronJob", "keel-report") in kinds
    assert ("ConfigMap", "keel-config") in kinds
    assert [k for k, _ in kinds].count("NetworkPolicy") == 3
    assert [k for k, _ in kinds].count("Job") == 1


def test_serving_reads_its_models_from_the_registry_at_start(base: dict[str, Any]) -> None:
    """`keel serve fraud churn` on every address; probes on warm-up, readiness and liveness."""
    pod = base["base/serve-deployment.yaml"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]

    assert c["args"] == ["serve", "fraud", "churn", "--host", "0.0.0.0", "--port", "8000"]
    assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000}
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}


def test_every_pod_runs_unprivileged_on_a_read_only_root(base: dict[str, Any]) -> None:
    """Non-root, no privilege escalation, no capabilities, read-only root; /tmp and the home
    folder are the only writable mounts, and every mount names a volume of its pod."""
    pods = pod_specs(base)

    assert len(pods) == 6  # serve, two loops, ui, the migration, the reports
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"] for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp"
            assert mounts["/var/lib/keel"] == "home"
            assert set(mounts.values()) <= volumes


def test_the_loop_is_one_pod_per_model_never_two(base: dict[str, Any]) -> None:
    """`keel loop MODEL`, one replica, recreated rather than rolled."""
    loop = base["base/loop-fraud-deployment.yaml"]

    assert loop["spec"]["replicas"] == 1
    assert loop["spec"]["strategy"] == {"type": "Recreate"}
    assert loop["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "loop",
        "fraud",
        "--interval",
        "60",
    ]


def test_the_migration_and_the_reports_run_keel_commands(base: dict[str, Any]) -> None:
    """`keel db upgrade` in a Job named after the image; `keel monitor report` per model."""
    (job_file,) = [p for p in base if p.endswith("db-upgrade-job.yaml")]
    job = base[job_file]
    cron = base["base/report-cronjob.yaml"]["spec"]
    script = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]

    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert job["metadata"]["name"].startswith("keel-db-upgrade-")
    assert cron["schedule"] == "0 6 * * *"
    assert "for m in fraud churn; do keel monitor report" in script


def test_the_settings_file_loads_as_keel_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's keel.toml is read by `keel.store.Settings` (which forbids unknown keys)."""
    path = tmp_path / "keel.toml"
    path.write_text(keel_toml(home=str(tmp_path / "home")))
    monkeypatch.setenv("KEEL_CONFIG", str(path))
    for var in ("KEEL_HOME", "KEEL_OPEN_PREDICT", "KEEL_POLL_INTERVAL_S"):
        monkeypatch.delenv(var, raising=False)

    settings = Settings()

    assert settings.home == tmp_path / "home"
    assert settings.open_predict is False
    assert settings.poll_interval_s == 2.0


def test_keda_replaces_the_cpu_autoscaler() -> None:
    """KEDA makes its own HPA: with --keda there is a ScaledObject on the request rate and no
    HorizontalPodAutoscaler (two on one Deployment would fight)."""
    files = render_tree(deploy_spec(image=IMAGE, models="fraud", keda=True))
    base = objects(files, "base/")
    kinds = [o["kind"] for o in base.values()]
    scaled = base["base/serve-scaledobject.yaml"]

    assert "HorizontalPodAutoscaler" not in kinds
    assert scaled["spec"]["triggers"][0]["type"] == "prometheus"
    assert "keel_requests_total" in scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert yaml.safe_load(files["dev/patches/delete-scaledobject.yaml"])["$patch"] == "delete"


def test_prod_adds_postgresql_and_s3_from_the_secret_to_every_container() -> None:
    """Every workload of prod gets the database URL and the S3 credentials from the Secret."""
    spec = deploy_spec(
        image=IMAGE,
        models="fraud",
        artifacts="s3://acme-keel/prod",
        s3_endpoint_url="http://minio.storage.svc:9000",
    )
    files = render_tree(spec)
    patches = objects(files, "prod/patches/")
    base = objects(files, "base/")

    assert len(patches) == len(pod_specs(base))
    for patch in patches.values():
        (c,) = pod_specs({"p": patch})[0]["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["KEEL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "keel-secrets"
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "keel-secrets"
        assert env["KEEL_ARTIFACTS"]["value"] == "s3://acme-keel/prod"
        assert env["KEEL_S3_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    egress = base["base/networkpolicy-default.yaml"]["spec"]["egress"][1]["ports"]
    assert {"protocol": "TCP", "port": 9000} in egress


def test_dev_runs_one_pod_on_a_volume_without_autoscaling() -> None:
    """dev: one serving pod, every home folder on the PVC, the HPA and PDB deleted."""
    files = render_tree(deploy_spec(image=IMAGE, models="fraud"))
    dev = objects(files, "dev/")
    serve = dev["dev/patches/keel-serve.yaml"]

    assert serve["spec"]["replicas"] == 1
    assert serve["spec"]["template"]["spec"]["volumes"] == [
        {"name": "home", "emptyDir": None, "persistentVolumeClaim": {"claimName": "keel-home"}}
    ]
    assert dev["dev/home-pvc.yaml"]["kind"] == "PersistentVolumeClaim"
    assert {p["$patch"] for p in dev.values() if "$patch" in p} == {"delete"}
    assert "KEEL_DATABASE_URL" not in "".join(t for p, t in files.items() if p.startswith("dev/"))


def test_the_rayservice_imports_keels_ray_builder() -> None:
    """serveConfigV2 runs `keel.serve.ray:build` with the models as its argument."""
    files = render_tree(deploy_spec(image=IMAGE, models="fraud,churn", target="rayservice"))
    ray = yaml.safe_load(files["rayservice.yaml"])
    (app,) = yaml.safe_load(ray["spec"]["serveConfigV2"])["applications"]

    assert ray["apiVersion"] == "ray.io/v1"
    assert app["import_path"] == "keel.serve.ray:build"
    assert app["args"] == {"models": ["fraud", "churn"]}
    assert sorted(files) == [
        "configmap.yaml",
        "kustomization.yaml",
        "rayservice.yaml",
        "serviceaccount.yaml",
    ]


def test_write_tree_refuses_to_overwrite(tmp_path: Path) -> None:
    """A second render into the same folder fails, naming a file, unless forced."""
    spec = deploy_spec(image=IMAGE, models="fraud")
    written = write_tree(spec, tmp_path)

    with pytest.raises(DeployError, match="files exist already under"):
        write_tree(spec, tmp_path)
    assert write_tree(spec, tmp_path, force=True) == written
    assert (tmp_path / "base" / "kustomization.yaml").is_file()


def test_deploy_exports() -> None:
    """keel.deploy's public names."""
    import keel.deploy

    assert keel.deploy.__all__ == [
        "DeployError",
        "DeploySpec",
        "TARGETS",
        "deploy_spec",
        "keel_toml",
        "render_tree",
        "serve_config",
        "write_tree",
    ]


def test_the_autoscaler_owns_the_serving_count(base: dict[str, Any]) -> None:
    """No `replicas` on the serving Deployment in base: each `kubectl apply` would reset what
    the HPA chose; the HPA starts at --min-replicas."""
    serve = base["base/serve-deployment.yaml"]["spec"]
    hpa = base["base/serve-hpa.yaml"]["spec"]

    assert "replicas" not in serve
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)


def test_write_tree_needs_a_folder(tmp_path: Path) -> None:
    """`-o` naming a file is refused with the path, not a traceback."""
    target = tmp_path / "k8s"
    target.write_text("not a folder")

    with pytest.raises(DeployError) as exc:
        write_tree(deploy_spec(image=IMAGE, models="fraud"), target)

    assert str(exc.value) == (
        f"output {target} is a file; expected a folder to write the manifests into (-o DIR)"
    )
