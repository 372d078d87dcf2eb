"""`keel deploy render`: Kubernetes manifests or a KubeRay RayService for keel."""

from __future__ import annotations

from pathlib import Path

import typer

from keel.render import console

app = typer.Typer(help="Manifests to run keel on Kubernetes or KubeRay.", no_args_is_help=True)


@app.command("render")
def render_cmd(
    image: str = typer.Option(..., help="The keel image, pinned: 'registry/keel:0.1.0'."),
    models: str = typer.Option(..., help="Models to serve and loop over: 'fraud[,other]'."),
    target: str = typer.Option("kubernetes", help="'kubernetes' (kustomize) or 'rayservice'."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the files into."),
    keda: bool = typer.Option(
        False, "--keda", help="A KEDA ScaledObject on the request rate instead of the CPU HPA."
    ),
    prometheus_url: str = typer.Option(
        "http://prometheus-server.monitoring.svc:80",
        help="Prometheus that KEDA asks for keel_requests_total (with --keda).",
    ),
    artifacts: str = typer.Option(
        "s3://keel/artifacts",
        help="Artifact store of the prod overlay and of Ray: s3://BUCKET/PREFIX.",
    ),
    s3_endpoint_url: str | None = typer.Option(
        None, help="An S3-compatible endpoint (MinIO, Ceph); leave out for AWS S3."
    ),
    report_schedule: str = typer.Option("0 6 * * *", help="Cron schedule of the reports (UTC)."),
    min_replicas: int = typer.Option(2, help="Fewest serving pods (prod)."),
    max_replicas: int = typer.Option(10, help="Most serving pods (prod)."),
    ray_version: str = typer.Option(
        "2.49.0", help="The Ray in the image (rayVersion; with --target rayservice)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Write a kustomize tree (base/, dev/, prod/) or a RayService; models come from the
    registry when the pods start, never from the image."""
    from keel.deploy import deploy_spec, write_tree

    spec = deploy_spec(
        image=image,
        models=models,
        target=target,
        keda=keda,
        prometheus_url=prometheus_url,
        artifacts=artifacts,
        s3_endpoint_url=s3_endpoint_url,
        report_schedule=report_schedule,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        ray_version=ray_version,
    )
    written = write_tree(spec, output, force=force)
    console.print(f"{len(written)} files written under {output}")
    if target == "kubernetes":
        console.print(f"apply with: kubectl apply -k {output / 'dev'}  (or {output / 'prod'})")
    else:
        console.print(f"apply with: kubectl apply -k {output}")
