"""Deploy: Kubernetes manifests (a kustomize tree) and a KubeRay RayService for keel.

`deploy_spec(...)` validates what was asked (image, model names, URLs) into a `DeploySpec`;
`render_tree(spec)` returns every file as text, `write_tree(spec, out)` writes them. Only
dicts dumped with PyYAML's safe dumper: no text templates. Names load on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "DeployError": "keel.deploy.spec",
    "DeploySpec": "keel.deploy.spec",
    "TARGETS": "keel.deploy.spec",
    "deploy_spec": "keel.deploy.spec",
    "keel_toml": "keel.deploy.kubernetes",
    "render_tree": "keel.deploy.tree",
    "serve_config": "keel.deploy.rayservice",
    "write_tree": "keel.deploy.tree",
}

if TYPE_CHECKING:
    from keel.deploy.kubernetes import keel_toml as keel_toml
    from keel.deploy.rayservice import serve_config as serve_config
    from keel.deploy.spec import (
        TARGETS as TARGETS,
        DeployError as DeployError,
        DeploySpec as DeploySpec,
        deploy_spec as deploy_spec,
    )
    from keel.deploy.tree import render_tree as render_tree, write_tree as write_tree

__getattr__ = lazy_getattr("keel.deploy", _NAMES)

__all__ = sorted(_NAMES)
