"""The files `keel deploy render` writes: YAML from plain dicts, never from text templates.

PyYAML's safe dumper quotes whatever needs quoting, so no value (an image name, a URL) can
become YAML structure; the values were validated beforehand anyway (`spec.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from keel.deploy.kubernetes import base_resources, config_map, service_account
from keel.deploy.overlays import dev_overlay, kustomization, prod_overlay
from keel.deploy.rayservice import ray_service
from keel.deploy.spec import DeployError, DeploySpec


class _Dumper(yaml.SafeDumper):
    """The safe dumper, with multi-line strings (keel.toml, Ray's serve config) as blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    """One YAML document, keys in the order the builders wrote them."""
    return str(yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=120))


def render_tree(spec: DeploySpec) -> dict[str, str]:
    """Every file to write, by path relative to the output folder.

    `kubernetes`: `base/` (complete objects) and the overlays `dev/` and `prod/`.
    `rayservice`: one kustomization with the RayService, its ServiceAccount and keel.toml.
    """
    if spec.target == "rayservice":
        objs = {
            "serviceaccount.yaml": service_account(),
            "configmap.yaml": config_map(),
            "rayservice.yaml": ray_service(spec),
        }
        files = {name: dump(obj) for name, obj in objs.items()}
        files["kustomization.yaml"] = dump(kustomization(list(objs), []))
        return files
    base = base_resources(spec)
    files = {f"base/{name}": dump(obj) for name, obj in base.items()}
    files["base/kustomization.yaml"] = dump(kustomization(list(base), []))
    for name, obj in dev_overlay(base).items():
        files[f"dev/{name}"] = dump(obj)
    for name, obj in prod_overlay(base, spec).items():
        files[f"prod/{name}"] = dump(obj)
    return files


def write_tree(spec: DeploySpec, out: Path, *, force: bool = False) -> list[Path]:
    """Write the files under `out`; refuse to overwrite a file unless `force`.

    Raises:
        DeployError: when a file exists already, or `out` is a file (nothing is written then).
    """
    if out.exists() and not out.is_dir():
        msg = f"output {out} is a file; expected a folder to write the manifests into (-o DIR)"
        raise DeployError(msg)
    files = render_tree(spec)
    existing = sorted(str(out / rel) for rel in files if (out / rel).exists())
    if existing and not force:
        msg = (
            f"{len(existing)} files exist already under {out} (first: {existing[0]}); "
            "render into an empty folder, or pass --force to overwrite them"
        )
        raise DeployError(msg)
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
