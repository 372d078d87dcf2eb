"""Ray Serve scaling settings: what Ray is told, and what is refused (no Ray needed)."""

from __future__ import annotations

import pytest

from keel.serve import RayScaling
from keel.store import ConfigError


def test_options_are_ray_serves_deployment_options() -> None:
    options = RayScaling(
        min_replicas=0, max_replicas=4, target_ongoing_requests=8, num_cpus=0.25
    ).options()
    assert options == {
        "autoscaling_config": {
            "min_replicas": 0,
            "initial_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 8,
        },
        "ray_actor_options": {"num_cpus": 0.25},
        "max_ongoing_requests": 256,
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"min_replicas": -1}, "min_replicas is -1"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas is 2"),
        ({"target_ongoing_requests": 0.0}, "target_ongoing_requests is 0.0"),
        ({"target_ongoing_requests": float("nan")}, "target_ongoing_requests is nan"),
        ({"num_cpus": 0.0}, "num_cpus is 0.0"),
        ({"num_cpus": 100.0}, "num_cpus is 100.0"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests is 0"),
    ],
)
def test_bad_scaling_is_refused_by_name(fields: dict[str, float], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RayScaling(**fields)  # type: ignore[arg-type]
