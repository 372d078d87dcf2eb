"""`keel deploy render`'s inputs: every value a manifest carries is checked first."""

from __future__ import annotations

import pytest

from keel.deploy import DeployError, deploy_spec

IMAGE = "ghcr.io/acme/keel:0.1.0"


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/keel:0.1.0",
        "keel:1",
        "localhost:5000/team/keel:2026.12.02-rc1",
        "registry.example.com/keel@sha256:" + "a" * 64,
        "keel:0.1.0@sha256:" + "0" * 64,
    ],
)
def test_pinned_image_references_are_accepted(image: str) -> None:
    """A reference with a version tag or a digest is kept as given."""
    assert deploy_spec(image=image, models="fraud").image == image


def test_an_image_without_a_tag_is_refused() -> None:
    """Pods started on different days must run the same code: a tag or digest is required."""
    with pytest.raises(DeployError) as exc:
        deploy_spec(image="ghcr.io/acme/keel", models="fraud")

    assert str(exc.value) == (
        "image 'ghcr.io/acme/keel' is not pinned: without a tag, or with 'latest', pods started "
        "on different days run different code; give a version tag ('keel:0.1.0') or a digest"
    )


@pytest.mark.parametrize(
    "image",
    [
        "keel:latest",
        "Keel:1",
        "keel:1\nkind: Secret",
        "keel:1; rm -rf /",
        "keel :1",
        "",
        "ghcr.io//keel:1",
        "keel:" + "x" * 129,
    ],
)
def test_malformed_or_unpinned_images_are_refused(image: str) -> None:
    """Anything the kubelet would not pull as a pinned image fails before a file is written."""
    with pytest.raises(DeployError, match="image"):
        deploy_spec(image=image, models="fraud")


def test_model_names_come_from_a_comma_list_or_a_list() -> None:
    """`fraud,churn` and ["fraud", "churn"] give the same models, in order."""
    assert deploy_spec(image=IMAGE, models="fraud, churn").models == ("fraud", "churn")
    assert deploy_spec(image=IMAGE, models=["fraud", "churn"]).models == ("fraud", "churn")


def test_a_model_name_that_cannot_name_kubernetes_objects_is_refused() -> None:
    """Model names label pods and name the loop's Deployment: DNS-1123 labels only."""
    with pytest.raises(DeployError) as exc:
        deploy_spec(image=IMAGE, models="fraud,Churn_v2")

    assert str(exc.value) == (
        "model name 'Churn_v2' cannot name Kubernetes objects; expected a DNS-1123 label of at "
        "most 53 characters: lowercase letters, digits and '-', starting and ending with a "
        "letter or digit (register the model under such a name)"
    )


@pytest.mark.parametrize("models", ["-fraud", "fraud-", "a" * 54, "fr aud", "fraud.v2", "", ","])
def test_bad_model_names_are_refused(models: str) -> None:
    """Leading or trailing '-', too long, spaces, dots, empty names: refused."""
    with pytest.raises(DeployError):
        deploy_spec(image=IMAGE, models=models)


def test_a_model_given_twice_is_refused() -> None:
    """Two loops for one model would be one too many."""
    with pytest.raises(DeployError, match="model 'fraud' is given twice"):
        deploy_spec(image=IMAGE, models="fraud,churn,fraud")


def test_the_longest_model_name_still_names_its_loop() -> None:
    """53 characters + 'keel-loop-' is 63, the limit of a label."""
    assert deploy_spec(image=IMAGE, models="a" * 53).models == ("a" * 53,)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("artifacts", "s3://Bad_Bucket/x"),
        ("artifacts", "gs://bucket/x"),
        ("artifacts", "s3://bucket/x?versionId=1"),
        ("s3_endpoint_url", "ftp://minio:9000"),
        ("s3_endpoint_url", "http://minio:99999"),
        ("s3_endpoint_url", "http://minio:9000/$(id)"),
        ("prometheus_url", "prometheus:9090"),
        ("report_schedule", "every day"),
        ("report_schedule", "0 6 * *"),
        ("report_schedule", "0 6 * * *; rm"),
        ("target", "helm"),
        ("ray_version", "2.49"),
        ("ray_version", "latest"),
    ],
)
def test_urls_schedules_and_targets_are_checked(option: str, value: str) -> None:
    """Each option that reaches a manifest or a shell line is checked against its grammar."""
    with pytest.raises(DeployError):
        deploy_spec(image=IMAGE, models="fraud", **{option: value})


def test_replicas_must_be_ordered() -> None:
    """The HPA's floor is at least 1 and at most its ceiling."""
    with pytest.raises(DeployError) as exc:
        deploy_spec(image=IMAGE, models="fraud", min_replicas=3, max_replicas=2)

    assert str(exc.value) == (
        "replicas from 3 to 2: expected 1 <= min <= max; fix --min-replicas / --max-replicas"
    )


def test_a_deploy_error_is_a_keel_error_and_a_value_error() -> None:
    """The CLI prints it as one line; Python callers may catch ValueError."""
    from keel.store import KeelError

    assert issubclass(DeployError, KeelError)
    assert issubclass(DeployError, ValueError)
