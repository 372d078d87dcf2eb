"""Screenshots of every dashboard page into docs/screenshots/, from a demo run's stores.

usage: .venv/bin/python scripts/screenshots.py [DEMO_HOME]   (default .keel/demo; runs the demo
first when that folder has no stores). Drives Debian's chromium with Playwright.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main() -> None:
    home = Path(sys.argv[1] if len(sys.argv) > 1 else ".keel/demo").resolve()
    if not (home / "keel.db").exists():
        subprocess.run([sys.executable, "-m", "keel", "demo", "--home", str(home)], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "KEEL_CONFIG": str(home / "keel.toml")}
    proc = subprocess.Popen([sys.executable, "-m", "keel", "ui", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/ui/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        from keel.registry import ModelStore
        from keel.store import load_settings

        os.environ["KEEL_CONFIG"] = str(home / "keel.toml")
        models = ModelStore.open(load_settings())
        version = models.aliases("fraud")["production"].version
        pages = {
            "models": "/ui",
            "model": "/ui/models/fraud",
            "version": f"/ui/models/fraud/versions/{version}",
            "data": "/ui/data",
        }
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # the demo configures tokens: log in with its token (the session is a cookie)
            from keel.demo._story import TOKEN

            page.goto(url + "/ui/login")
            page.fill("input[name=token]", TOKEN)
            page.click("#login button")
            page.wait_for_url(url + "/ui")
            for name, path in pages.items():
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                time.sleep(0.5)  # charts draw after the scripts run
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=name != "version")
                print("wrote", OUT / f"{name}.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
