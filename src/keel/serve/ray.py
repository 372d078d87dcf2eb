"""keel's HTTP server in Ray Serve replicas: the same ASGI app, built inside each replica.

`ray_deployment` wraps keel's unchanged Starlette app (`keel.serve.create_app`) in a Ray Serve
deployment with a *late-bound* ingress: the replica's `__serve_build_asgi_app__` builds the app
in the replica's own process and event loop, and Ray Serve runs its lifespan, so each replica
has keel's own micro-batchers, alias follower, prediction log and window profiles, exactly as
one `keel serve` worker has. Ray Serve adds the routing between replicas and the autoscaling.

Replicas share the stores named by the settings (the metadata database and the artifact
store): on a cluster those must be PostgreSQL and an object store every node reaches. Each
replica writes its own prediction-log files and profiles, which merge by addition.

`build` is a Ray Serve application builder for a KubeRay `RayService`
(`import_path: keel.serve.ray:build`, `args: {models: [...], ...}`); its replicas read their
settings from their environment (`KEEL_*`), as a `keel serve` pod does.

`ray` is imported inside the functions: `import keel.serve` never loads it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.serve.app import create_app
from keel.store import ConfigError, Settings, load_settings

AppFactory = Callable[[Settings, list[str] | None], Any]


def serve_app(settings: Settings, names: list[str] | None) -> Any:
    """The default factory: keel's serving app (`create_app`), no dashboard."""
    return create_app(settings, names=names)


@dataclass(frozen=True, slots=True)
class RayScaling:
    """How Ray Serve scales keel's replicas.

    `min_replicas`..`max_replicas` by `target_ongoing_requests` per replica (Ray Serve's
    autoscaler); each replica reserves `num_cpus` (fractional: two whole-CPU replicas cannot
    start on a two-core machine) and takes at most `max_ongoing_requests` at once (keel's
    micro-batcher needs many in flight to batch; Ray Serve's default of 5 starves it).
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 32.0
    num_cpus: float = 0.5
    max_ongoing_requests: int = 256

    def __post_init__(self) -> None:
        checks = (
            ("min_replicas", self.min_replicas, self.min_replicas >= 0, "0 or more"),
            (
                "max_replicas",
                self.max_replicas,
                self.max_replicas >= max(1, self.min_replicas),
                f"at least 1 and at least min_replicas ({self.min_replicas})",
            ),
            (
                "target_ongoing_requests",
                self.target_ongoing_requests,
                math.isfinite(self.target_ongoing_requests) and self.target_ongoing_requests > 0,
                "a number above 0",
            ),
            (
                "num_cpus",
                self.num_cpus,
                math.isfinite(self.num_cpus) and 0 < self.num_cpus <= 64,
                "a number of CPUs above 0 (fractions allowed, e.g. 0.5) and at most 64",
            ),
            (
                "max_ongoing_requests",
                self.max_ongoing_requests,
                self.max_ongoing_requests >= 1,
                "1 or more",
            ),
        )
        for field, value, ok, expected in checks:
            if not ok:
                msg = f"Ray scaling {field} is {value!r}; expected {expected}."
                raise ConfigError(msg)

    def options(self) -> dict[str, Any]:
        """The Ray Serve deployment options these settings mean."""
        return {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(1, self.min_replicas),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            },
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }


def _factory(path: str) -> AppFactory:
    """The app factory named `module:function`."""
    module, _, name = path.partition(":")
    if not module or not name:
        msg = f"App factory {path!r} is not 'module:function'; expected e.g. 'keel.serve.ray:serve_app'."
        raise ConfigError(msg)
    factory = getattr(importlib.import_module(module), name, None)
    if not callable(factory):
        msg = f"App factory {path!r} names nothing callable in {module!r}; expected a function (settings, names) -> ASGI app."
        raise ConfigError(msg)
    return factory  # type: ignore[no-any-return]


def ray_deployment(
    names: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    scaling: RayScaling | None = None,
    factory: str = "keel.serve.ray:serve_app",
    name: str = "keel",
) -> Any:
    """A bound Ray Serve application running keel's server for `names` (default: all models).

    `settings`: given, every replica uses them (pickled to the replicas with the deployment:
    they hold the tokens, so use this on a cluster you trust); None, each replica reads its own
    environment (`KEEL_*`, keel.toml in its working folder). `factory` (`module:function`,
    called in the replica with the settings and the names) builds the ASGI app; the default is
    keel's serving app, `keel serve --engine ray` adds the dashboard. Run it with
    `ray.serve.run(app, route_prefix="/")`.
    """
    try:
        from ray import serve
    except ImportError as exc:
        msg = "keel.serve.ray needs Ray Serve, which is not installed: pip install 'keel[ray]'."
        raise ConfigError(msg) from exc

    scaling = scaling or RayScaling()
    _factory(factory)  # a wrong path fails here, not in every replica
    models = list(names) if names else None

    @serve.ingress()
    class KeelReplica:
        def __init__(self, settings: Settings | None, models: list[str] | None) -> None:
            self.settings = settings
            self.models = models

        def __serve_build_asgi_app__(self) -> Any:
            settings = self.settings if self.settings is not None else load_settings()
            return _factory(factory)(settings, self.models)

    deployment = serve.deployment(name=name, **scaling.options())(KeelReplica)
    return deployment.bind(settings, models)


deployment = ray_deployment
"""`keel.serve.ray.deployment(...)`: the same function under the name users look for."""


def build(args: Mapping[str, Any]) -> Any:
    """Ray Serve application builder (`import_path: keel.serve.ray:build`).

    `args` (a RayService's `serveConfigV2` `args`): `models` (a list of names or one
    comma-separated string; default every registered model), and optionally `min_replicas`,
    `max_replicas`, `target_ongoing_requests`, `num_cpus`, `max_ongoing_requests`. Replicas
    read their settings from their environment.
    """
    known = {"models", *RayScaling.__dataclass_fields__}
    unknown = sorted(set(args) - known)
    if unknown:
        msg = f"keel.serve.ray:build got the args {unknown}; expected only {sorted(known)}."
        raise ConfigError(msg)
    models = args.get("models")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        msg = f"keel.serve.ray:build args models is {models!r}; expected a list of model names."
        raise ConfigError(msg)
    try:
        scaling = RayScaling(**{k: v for k, v in args.items() if k != "models"})
    except TypeError as exc:
        msg = f"keel.serve.ray:build args {dict(args)!r} do not make Ray scaling settings ({exc})."
        raise ConfigError(msg) from exc
    return ray_deployment(models, scaling=scaling)
