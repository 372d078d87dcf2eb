"""What `keel deploy render` is asked for, validated before anything is written.

Every value that ends up in a manifest is checked here against the grammar Kubernetes (or the
container registry) will apply later, so a typo fails now with a message naming it rather than
at `kubectl apply` time, and nothing a caller types can add a key or a line to a manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from keel.store import KeelError

TARGETS = ("kubernetes", "rayservice")

# RFC 1123 label, as Kubernetes checks names of Services and labels' values (IsDNS1123Label)
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# the longest model name that keeps `keel-loop-<model>` within a 63-character label
MAX_MODEL_NAME = 63 - len("keel-loop-")

# distribution/reference's grammar (the one `docker pull` and the kubelet apply)
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")

# S3 bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")
# one cron field: numbers, names, ranges, lists, steps and '*' (what CronJob's parser takes)
_CRON_FIELD = re.compile(r"[A-Za-z0-9*/,-]+")
_RAY_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


class DeployError(KeelError, ValueError):
    """Raised when `keel deploy render` is given a value no manifest may carry."""


@dataclass(frozen=True)
class DeploySpec:
    """A validated request for manifests.

    Attributes:
        image: the container image, pinned by tag or digest (`registry/keel:0.1.0`).
        models: the models the servers serve and the loop looks after, DNS-1123 labels.
        target: `kubernetes` (the kustomize tree) or `rayservice` (a KubeRay RayService).
        keda: also write a KEDA ScaledObject on the request rate (in place of the CPU HPA).
        prometheus_url: where KEDA asks Prometheus for the request rate.
        artifacts: the artifact store of the prod overlay and of Ray (`s3://bucket/prefix`).
        s3_endpoint_url: an S3-compatible endpoint (MinIO, Ceph); None for AWS itself.
        report_schedule: the CronJob schedule of the monitoring reports (five cron fields).
        min_replicas: the fewest serving pods in prod (the HPA's floor).
        max_replicas: the most serving pods in prod (the HPA's ceiling).
        ray_version: the Ray in the image (`rayVersion` of the RayService).
    """

    image: str
    models: tuple[str, ...]
    target: str = "kubernetes"
    keda: bool = False
    prometheus_url: str = "http://prometheus-server.monitoring.svc:80"
    artifacts: str = "s3://keel/artifacts"
    s3_endpoint_url: str | None = None
    report_schedule: str = "0 6 * * *"
    min_replicas: int = 2
    max_replicas: int = 10
    ray_version: str = "2.49.0"


def deploy_spec(
    *,
    image: str,
    models: str | list[str] | tuple[str, ...],
    target: str = "kubernetes",
    keda: bool = False,
    prometheus_url: str = DeploySpec.prometheus_url,
    artifacts: str = DeploySpec.artifacts,
    s3_endpoint_url: str | None = None,
    report_schedule: str = DeploySpec.report_schedule,
    min_replicas: int = DeploySpec.min_replicas,
    max_replicas: int = DeploySpec.max_replicas,
    ray_version: str = DeploySpec.ray_version,
) -> DeploySpec:
    """Check every value and return the spec the renderers take.

    Args:
        image: a container image reference with a tag other than `latest`, or a digest.
        models: model names, as a list or one comma-separated string (`fraud,churn`).
        target: `kubernetes` or `rayservice`.
        keda: render a KEDA ScaledObject instead of the CPU HorizontalPodAutoscaler.
        prometheus_url: an http(s) URL of the Prometheus KEDA queries.
        artifacts: an `s3://bucket/prefix` URL.
        s3_endpoint_url: an http(s) URL, or None.
        report_schedule: five cron fields.
        min_replicas: at least 1.
        max_replicas: at least `min_replicas`.
        ray_version: MAJOR.MINOR.PATCH.

    Raises:
        DeployError: naming the value, what was expected and what to do.
    """
    if target not in TARGETS:
        msg = f"target {target!r} is not one of {list(TARGETS)}; pass --target kubernetes or --target rayservice"
        raise DeployError(msg)
    if min_replicas < 1 or max_replicas < min_replicas:
        msg = (
            f"replicas from {min_replicas} to {max_replicas}: expected 1 <= min <= max; "
            "fix --min-replicas / --max-replicas"
        )
        raise DeployError(msg)
    if not _RAY_VERSION.fullmatch(ray_version):
        msg = f"Ray version {ray_version!r} is not MAJOR.MINOR.PATCH; give the Ray of the image, e.g. 2.49.0"
        raise DeployError(msg)
    return DeploySpec(
        image=check_image(image),
        models=check_models(models),
        target=target,
        keda=keda,
        prometheus_url=check_http_url(prometheus_url, "--prometheus-url"),
        artifacts=check_s3_url(artifacts),
        s3_endpoint_url=None
        if s3_endpoint_url is None
        else check_http_url(s3_endpoint_url, "--s3-endpoint-url"),
        report_schedule=check_schedule(report_schedule),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        ray_version=ray_version,
    )


def check_image(image: str) -> str:
    """An image reference as the kubelet parses it, pinned by a tag (not `latest`) or digest."""
    match = _IMAGE.fullmatch(image)
    if match is None or len(match["name"]) > 255:
        msg = (
            f"image {image!r} is not a container image reference; expected "
            "[registry[:port]/]path[:tag][@sha256:digest] in lowercase, e.g. "
            "'ghcr.io/acme/keel:0.1.0'"
        )
        raise DeployError(msg)
    if match["digest"] is None and match["tag"] in (None, "latest"):
        msg = (
            f"image {image!r} is not pinned: without a tag, or with 'latest', pods started on "
            "different days run different code; give a version tag ('keel:0.1.0') or a digest"
        )
        raise DeployError(msg)
    return image


def check_models(models: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Model names as DNS-1123 labels (they name Deployments and label pods), each once."""
    names = models.split(",") if isinstance(models, str) else list(models)
    names = [n.strip() for n in names]
    if not names or names == [""]:
        msg = "no model given; expected --models NAME[,NAME...], e.g. --models fraud"
        raise DeployError(msg)
    seen: list[str] = []
    for name in names:
        if not _DNS1123_LABEL.fullmatch(name) or len(name) > MAX_MODEL_NAME:
            msg = (
                f"model name {name!r} cannot name Kubernetes objects; expected a DNS-1123 label "
                f"of at most {MAX_MODEL_NAME} characters: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit (register the model under such a name)"
            )
            raise DeployError(msg)
        if name in seen:
            msg = f"model {name!r} is given twice in --models {','.join(names)}; list each once"
            raise DeployError(msg)
        seen.append(name)
    return tuple(seen)


def check_s3_url(url: str) -> str:
    """An `s3://bucket/prefix` URL with a valid bucket name and a plain prefix."""
    parts = urlsplit(url)
    if (
        parts.scheme != "s3"
        or not _BUCKET.fullmatch(parts.netloc)
        or parts.query
        or parts.fragment
        or not _PREFIX.fullmatch(parts.path)
    ):
        msg = (
            f"artifacts {url!r} is not an S3 URL; expected s3://BUCKET/PREFIX with a bucket "
            "name of 3-63 lowercase letters, digits, '.' and '-', e.g. s3://acme-keel/artifacts"
        )
        raise DeployError(msg)
    return url


def check_http_url(url: str, option: str) -> str:
    """An http or https URL with a host and nothing a shell or YAML could misread."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or c in "\"'`$\\" for c in url)
    ):
        msg = f"{option} {url!r} is not an http(s) URL; expected e.g. http://minio.storage.svc:9000"
        raise DeployError(msg)
    try:
        _ = parts.port
    except ValueError as exc:
        msg = f"{option} {url!r} has a port that is not a number from 0 to 65535"
        raise DeployError(msg) from exc
    return url


def check_schedule(schedule: str) -> str:
    """Five cron fields, as a CronJob's `schedule` takes them."""
    fields = schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        msg = (
            f"report schedule {schedule!r} is not five cron fields (minute hour day month "
            "weekday); expected e.g. '0 6 * * *' for every day at 06:00 UTC"
        )
        raise DeployError(msg)
    return " ".join(fields)
