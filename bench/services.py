"""Private Redis and PostgreSQL servers that a run may restart without disturbing anyone else.

The chaos suite restarts both mid-run. It must not touch the machine's shared
servers, so it starts its own on private ports and throws them away after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from outdial.embedded import redis_server_binary


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it, else a port the kernel picks: two runs on one
    machine (CI's and a developer's) must not meet on a fixed port."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def wait_port(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout_s} s")


@dataclass
class PrivateRedis:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self, down_s: float = 0.5) -> None:
        """Stop, stay down ``down_s``, start again: everything it held (queues, locks, pacing) is
        gone, as after a crash."""
        self.stop()
        time.sleep(down_s)
        self.start()


@dataclass
class PrivatePostgres:
    """A throw-away cluster made with initdb, run as the ``postgres`` user (the server refuses root)."""

    port: int
    workdir: Path
    bindir: Path = field(default_factory=lambda: PrivatePostgres.find_bindir())
    database: str = "outdial"

    @staticmethod
    def find_bindir() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        return found[-1].parent

    @staticmethod
    def available() -> bool:
        try:
            PrivatePostgres.find_bindir()
        except RuntimeError:
            return False
        return os.geteuid() != 0 or shutil.which("runuser") is not None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _options(self) -> str:
        # fsync off: a benchmark cluster that is thrown away needs no durability on a crash.
        return f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    def start(self) -> None:
        data = self.workdir / "data"
        if not data.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.workdir, "postgres")
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
        self._run("pg_ctl", "-D", str(data), "-o", self._options(), "-l", str(self.workdir / "log"), "-w", "start")
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc",
             f"CREATE DATABASE {self.database}"],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def restart(self) -> None:
        """A fast restart: every connection is cut, as in a failover."""
        data = str(self.workdir / "data")
        self._run("pg_ctl", "-D", data, "-o", self._options(), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        if (self.workdir / "data").exists():
            self._run("pg_ctl", "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop")
