"""The whole stack on one machine (``outdial up``): Redis, database, simulator, API, scheduler, worker.

Every part runs as a child process in a session of its own, so stopping the
stack can end each part and everything it started, and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from outdial.embedded import EmbeddedRedis, ensure_redis
from outdial.metrics import MULTIPROC_ENV
from outdial.services.providers.accounts import load_accounts
from outdial.settings import DEMO_WEBHOOK_SECRET, Profile, Settings, get_settings, reset_settings
from outdial.store.db import upgrade

ROLES = ("simulator", "api", "scheduler", "worker")

log = logging.getLogger(__name__)


class PartGaveUp(RuntimeError):
    """A part crashed fast too many times in a row: restarting it again would only spin."""


@dataclass(frozen=True)
class RestartPolicy:
    """When ``outdial up`` starts a part again after it exited, and when it stops trying.

    A part that ran at least ``fast_crash_s`` before it exited is restarted after the first
    back-off: it was up, something passing killed it. One that exits sooner crashed fast; each
    fast crash in a row doubles the wait, and after ``max_fast_crashes`` of them the stack gives up.
    """

    fast_crash_s: float = 30.0
    max_fast_crashes: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0

    def backoff_s(self, fast_crashes: int) -> float:
        return min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** max(0, fast_crashes - 1))


@dataclass
class _Life:
    """What the supervisor knows of one named part."""

    role: str
    started_at: float
    fast_crashes: int = 0
    restart_at: float | None = None  # set while the part is down and waiting for its restart


def fill_demo_credentials(settings: Settings) -> None:
    """Give the ``sim-*`` accounts the simulator's public demo values where their variables are unset,
    and run in the demo profile (the only one that accepts the public demo webhook secret)."""
    from outdial.simulator.app import simulators

    os.environ.setdefault("OUTDIAL_PROFILE", Profile.DEMO.value)
    sims = simulators()
    for account in load_accounts(settings.accounts_file).values():
        sim = sims.get(account.provider)
        if not account.name.startswith("sim-") or sim is None:
            continue
        for key, env in account.credentials.items():
            if key in sim.demo_credentials:
                os.environ.setdefault(env, sim.demo_credentials[key])
        if account.webhook_secret_env:
            os.environ.setdefault(account.webhook_secret_env, DEMO_WEBHOOK_SECRET)


def share_metrics(settings: Settings) -> Path:
    """Point every part at one Prometheus multiprocess directory, emptied, so the workers'
    counters reach the API's ``/metrics`` (default: ``<data dir>/metrics``)."""
    metrics_dir = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "metrics")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):  # a previous run's processes: their values are not this run's
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    return metrics_dir


@dataclass
class Stack:
    settings: Settings
    log_dir: Path
    worker_args: list[str] = field(default_factory=lambda: ["--pool", "threads", "--concurrency", "64"])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    lives: dict[str, _Life] = field(default_factory=dict)

    def start(self) -> None:
        os.environ["OUTDIAL_DATABASE_URL"] = self.settings.resolved_database_url()
        if not self.settings.redis_url:
            self.redis = ensure_redis(self.settings)
            os.environ["OUTDIAL_REDIS_URL"] = self.redis.url
        os.environ.setdefault("OUTDIAL_PUBLIC_URL", f"http://{self.settings.api_host}:{self.settings.api_port}")
        os.environ.setdefault(
            "OUTDIAL_SIMULATOR_URL", f"http://{self.settings.simulator_host}:{self.settings.simulator_port}"
        )
        reset_settings()
        self.settings = get_settings()
        fill_demo_credentials(self.settings)
        share_metrics(self.settings)
        upgrade(self.settings.resolved_database_url())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for role in ROLES:
            self.spawn(role)
        self.wait_healthy()

    def argv(self, role: str) -> list[str]:
        """The command that runs one part."""
        return [sys.executable, "-m", "outdial", role, *(self.worker_args if role == "worker" else [])]

    def spawn(self, role: str, name: str | None = None) -> subprocess.Popen[bytes]:
        """Start one part (again) under ``name`` (default: the role), logging to ``<log_dir>/<name>.log``."""
        name = name or role
        args = self.argv(role)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        fast_crashes = self.lives[name].fast_crashes if name in self.lives else 0
        self.lives[name] = _Life(role, time.monotonic(), fast_crashes)
        return self.processes[name]

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one part and everything it started, and wait for it (fault injection, restarts)."""
        proc = self.processes.pop(name)
        self.lives.pop(name, None)
        _signal_group(proc, sig)
        proc.wait()

    def supervise(self, now: float | None = None) -> None:
        """Restart each part that exited, after its back-off; raise :class:`PartGaveUp` when one keeps
        crashing fast. Call it every second or so (``outdial up`` does)."""
        now = time.monotonic() if now is None else now
        policy = self.restart_policy
        for name, proc in list(self.processes.items()):
            life = self.lives[name]
            if proc.poll() is None:
                if life.fast_crashes and now - life.started_at >= policy.fast_crash_s:
                    life.fast_crashes = 0  # up long enough: its next exit starts a fresh count
                continue
            if life.restart_at is None:
                uptime = now - life.started_at
                life.fast_crashes = life.fast_crashes + 1 if uptime < policy.fast_crash_s else 0
                if life.fast_crashes >= policy.max_fast_crashes:
                    raise PartGaveUp(
                        f"{name} exited with status {proc.returncode} {life.fast_crashes} times in a row, "
                        f"each within {policy.fast_crash_s:.0f} s of its start; see {self.log_dir / name}.log"
                    )
                delay = policy.backoff_s(life.fast_crashes)
                life.restart_at = now + delay
                log.warning(
                    "%s exited with status %s after %.1f s; restarting it in %.1f s (fast crash %d of %d allowed)",
                    name, proc.returncode, uptime, delay, life.fast_crashes, policy.max_fast_crashes - 1,
                )  # fmt: skip
            elif now >= life.restart_at:
                _signal_group(proc, signal.SIGKILL)  # whatever the dead part left in its group goes too
                self.spawn(life.role, name)
                log.warning("%s restarted", name)

    def wait_healthy(self, timeout_s: float = 60) -> None:
        s = self.settings
        urls = [
            f"http://{s.api_host}:{s.api_port}/healthz",
            f"http://{s.simulator_host}:{s.simulator_port}/_sim/healthz",
        ]
        deadline = time.monotonic() + timeout_s
        for url in urls:
            while True:
                self.check_alive()
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s; logs in {self.log_dir}")
                time.sleep(0.2)

    def check_alive(self) -> None:
        for role, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with status {proc.returncode}; see {self.log_dir / role}.log")

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM to each part's whole process group, then SIGKILL to what is left."""
        for proc in reversed(list(self.processes.values())):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        self.processes.clear()
        self.lives.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


# Celery's own line at the end of each dispatch task: its returned word, or the expected failure.
_DISPATCH_END = re.compile(
    r"Task outdial\.dispatch_call\[[^\]]+\] "
    r"(?:succeeded in [^:]+: '(?P<word>[^']*)'|raised expected: CallNotPlaced\(.job \d+ (?P<failed>\w+))"
)


def dispatch_results(log_dir: Path) -> Counter[str]:
    """What every dispatch task in the workers' logs came to: ``accepted``, ``paced:rate``, ``unknown`` ...

    ``paced:*`` are hand-backs: the gate found no room and the job went back to wait.
    """
    results: Counter[str] = Counter()
    for log in log_dir.glob("worker*.log"):
        with log.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if (found := _DISPATCH_END.search(line)) is not None:
                    results[found["word"] or found["failed"]] += 1
    return results


def hand_back_share(results: Counter[str]) -> float:
    total = sum(results.values())
    return round(sum(n for word, n in results.items() if word.startswith("paced:")) / total, 4) if total else 0.0


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
