"""Provider adapters, one module each; a module that defines ``ADAPTER`` is registered by its presence."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from outdial.services.providers.base import Adapter

_NOT_ADAPTERS = {"base", "accounts", "transport", "registry"}


@cache
def adapters() -> dict[str, Adapter]:
    found: dict[str, Adapter] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_ADAPTERS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, Adapter):
            found[adapter.name] = adapter
    return found


def adapter_for(provider: str) -> Adapter:
    try:
        return adapters()[provider]
    except KeyError:
        raise KeyError(f"no adapter for provider {provider!r}; known: {sorted(adapters())}") from None
