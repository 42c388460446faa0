"""Provider adapters, registered explicitly (:mod:`outdial.registry`): built in, or added by an
installed package through the ``outdial.providers`` entry-point group."""

from __future__ import annotations

from functools import cache

from outdial.registry import ADAPTER_GROUP, registered
from outdial.services.providers.base import Adapter


@cache
def adapters() -> dict[str, Adapter]:
    found: dict[str, Adapter] = {}
    for entry in registered(ADAPTER_GROUP):
        adapter = entry.load()
        if not isinstance(adapter, Adapter) or adapter.name != entry.name:
            raise TypeError(f"{ADAPTER_GROUP} entry {entry.name!r} ({entry.value}) is not an Adapter named so")
        found[entry.name] = adapter
    return found


def adapter_for(provider: str) -> Adapter:
    try:
        return adapters()[provider]
    except KeyError:
        raise KeyError(f"no adapter for provider {provider!r}; known: {sorted(adapters())}") from None
