"""``outdial doctor``: every check of ``/readyz``, plus the provider accounts, each with its fix.

Only the *names* of environment variables are ever reported, never their values.
"""

from __future__ import annotations

from outdial.errors import ConfigError
from outdial.services.providers import adapters
from outdial.services.providers.accounts import Account, AccountError, load_accounts
from outdial.services.readiness import Check, check_database, check_migrations, check_redis
from outdial.settings import Settings


def account_checks(accounts: dict[str, Account], known_providers: set[str]) -> list[Check]:
    """Each account has an adapter for its provider and every credential variable it names set."""
    checks: list[Check] = []
    for account in accounts.values():
        name = f"account {account.name}"
        if account.provider not in known_providers:
            checks.append(
                Check(
                    name,
                    False,
                    f"no adapter for provider {account.provider!r}",
                    f"set provider to one of {', '.join(sorted(known_providers))} in the accounts file",
                )
            )
            continue
        missing = account.missing_env()
        if missing:
            checks.append(
                Check(
                    name,
                    False,
                    f"{account.provider}: environment variables not set: {', '.join(missing)}",
                    "; ".join(f"export {env}=..." for env in missing)
                    + (" (or `outdial up`, which fills in the simulator's demo values)" if _simulated(account) else ""),
                )
            )
        else:
            checks.append(Check(name, True, f"{account.provider} at {account.base_url}, credentials present"))
    return checks


def _simulated(account: Account) -> bool:
    return account.name.startswith("sim-")


def run_checks(settings: Settings) -> list[Check]:
    from outdial.store.db import URL_FIX, make_engine

    checks: list[Check] = []
    try:
        accounts = load_accounts(settings.accounts_file)
    except AccountError as exc:
        checks.append(Check("accounts file", False, str(exc), f"fix {settings.accounts_file} or OUTDIAL_ACCOUNTS_FILE"))
    else:
        checks.append(Check("accounts file", True, f"{settings.accounts_file}: {len(accounts)} accounts"))
        checks.extend(account_checks(accounts, set(adapters())))

    try:
        engine = make_engine(settings.resolved_database_url())
    except ConfigError as exc:  # a URL that cannot name a database: reported, not raised
        checks.append(Check("database", False, str(exc).split(": set it")[0], URL_FIX))
    else:
        try:
            database = check_database(engine)
            checks.append(database)
            if database.ok:
                checks.append(check_migrations(engine))
        finally:
            engine.dispose()

    if settings.redis_url:
        checks.append(check_redis(settings.redis_url))
    else:
        checks.append(Check("redis", True, "OUTDIAL_REDIS_URL not set: `outdial up` starts an embedded Redis"))
    return checks
