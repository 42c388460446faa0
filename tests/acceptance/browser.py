"""Headless Chromium for the browser tests, driven over the DevTools protocol on a pipe (no driver to
install), and ``outdial api`` in a process of its own for it to load pages from."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

PAGE_WIDTH = 1400
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Every host name but this machine's fails to resolve: a page that needs the network shows it.
NO_NETWORK = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4): NUL-terminated JSON."""

    def __init__(
        self, profile: Path, width: int = PAGE_WIDTH, height: int = 1000, extra_flags: Sequence[str] = ()
    ) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child, before exec: the pipe ends where Chromium looks for them
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self._process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, session: str | None = None, **params: object) -> dict[str, object]:
        self._next_id += 1
        message: dict[str, object] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, reply
                    result: dict[str, object] = reply["result"]
                    return result
            chunk = os.read(self._from_chrome, 1 << 16)
            assert chunk, "chromium closed the pipe"
            self._buffer += chunk
        raise AssertionError(f"no answer to {method}")

    def call(self, method: str, **params: object) -> dict[str, object]:
        return self.send(method, self._session, **params)

    def js(self, expression: str) -> object:
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in found, found
        return found["result"].get("value")  # type: ignore[attr-defined]

    def wait_for(self, expression: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"document.readyState === 'complete' && Boolean({expression})"):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)}")

    def screenshot(self, out: Path) -> tuple[int, int]:
        """The whole page, at the window's width; its (width, height) in CSS pixels."""
        width = int(self.js("document.documentElement.scrollWidth"))  # type: ignore[call-overload]
        height = int(self.js("document.documentElement.scrollHeight"))  # type: ignore[call-overload]
        self.call(
            "Emulation.setDeviceMetricsOverride", width=PAGE_WIDTH, height=height, deviceScaleFactor=1, mobile=False
        )
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(str(shot["data"])))
        return width, height

    def close(self) -> None:
        os.close(self._to_chrome)
        self._process.terminate()
        self._process.wait(timeout=20)
        os.close(self._from_chrome)


class ApiProcess:
    """``outdial api`` on ``port`` with ``env``, answering ``/healthz`` when the constructor returns."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.api = subprocess.Popen(
                [sys.executable, "-m", "outdial", "api", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.api.poll() is not None:
                self.stop()
                raise AssertionError(log.read_text())
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.api.pid, signal.SIGTERM)
        self.api.wait(timeout=20)
