"""Provider accounts, read from ``config/accounts.toml``.

Credentials are stored as the *names* of environment variables, and are read
from the environment only when a request is built, so no secret ever sits in
a task argument, a log line or the repository.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outdial.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class AccountError(ConfigError):
    """The accounts file, an account in it, or one of its credentials is unusable."""


class MissingCredential(AccountError):
    def __init__(self, account: str, key: str, env: str) -> None:
        super().__init__(f"account {account}: credential {key!r} needs the environment variable {env}")
        self.env = env


def expand(value: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` in non-secret settings such as URLs."""
    return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


@dataclass(frozen=True)
class Limits:
    calls_per_second: float | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True)
class Account:
    name: str
    provider: str
    base_url: str
    credentials: dict[str, str] = field(default_factory=dict)  # key -> env var name
    options: dict[str, Any] = field(default_factory=dict)  # agent_id, outbound_id, ...
    webhook_secret_env: str | None = None
    limits: Limits = field(default_factory=Limits)

    def secret(self, key: str) -> str:
        env = self.credentials.get(key)
        if env is None:
            raise AccountError(f"account {self.name}: no credential {key!r} in the accounts file")
        value = os.environ.get(env)
        if not value:
            raise MissingCredential(self.name, key, env)
        return value

    def webhook_secret(self) -> str | None:
        return os.environ.get(self.webhook_secret_env) if self.webhook_secret_env else None

    def option(self, key: str) -> Any:
        if key not in self.options:
            raise AccountError(f"account {self.name}: option {key!r} is missing from the accounts file")
        return self.options[key]

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def missing_env(self) -> list[str]:
        """Environment variables this account names that are not set."""
        names = [*self.credentials.values(), *([self.webhook_secret_env] if self.webhook_secret_env else [])]
        return [n for n in names if not os.environ.get(n)]


def _account(name: str, raw: dict[str, Any]) -> Account:
    for key in ("provider", "base_url"):
        if key not in raw:
            raise AccountError(f"account {name}: {key!r} is required")
    unknown = set(raw) - {"provider", "base_url", "credentials", "options", "webhook_secret", "limits"}
    if unknown:
        raise AccountError(f"account {name}: unknown keys {sorted(unknown)}")
    options = {k: expand(v) if isinstance(v, str) else v for k, v in raw.get("options", {}).items()}
    limits = raw.get("limits", {})
    return Account(
        name=name,
        provider=str(raw["provider"]),
        base_url=expand(str(raw["base_url"])),
        credentials={str(k): str(v) for k, v in raw.get("credentials", {}).items()},
        options=options,
        webhook_secret_env=raw.get("webhook_secret"),
        limits=Limits(limits.get("calls_per_second"), limits.get("max_concurrent")),
    )


def load_accounts(path: Path) -> dict[str, Account]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountError(f"accounts file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountError(f"accounts file {path}: {exc}") from None
    return {name: _account(name, raw) for name, raw in data.get("accounts", {}).items()}
