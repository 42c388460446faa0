"""Providers register explicitly: the literal table in outdial.registry, plus installed packages' entry points."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from outdial import registry
from outdial.services import providers
from outdial.services.providers.callkaro import CallKaro
from outdial.simulator import app as sim_app
from outdial.simulator.base import ProviderSim
from outdial.simulator.callkaro import SIMULATOR as CALLKARO_SIM


class Acme(CallKaro):
    name = "acme"


ACME = Acme()
ACME_SIM = ProviderSim(name="acme", router=CALLKARO_SIM.router)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """Entry points as an installed third-party package would declare them."""
    found: list[EntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in found if e.group == group])
    providers.adapters.cache_clear()
    yield found
    providers.adapters.cache_clear()


def test_the_built_in_providers_are_a_literal_table() -> None:
    names = [p.name for p in registry.BUILT_IN]
    assert names == ["callkaro", "mobtexting", "nixflex", "nlpearl", "trillet"]
    assert sorted(providers.adapters()) == sorted(sim_app.simulators()) == names


def test_a_package_adds_a_provider_by_entry_point(installed: list[EntryPoint]) -> None:
    installed.append(EntryPoint("acme", f"{__name__}:ACME", registry.ADAPTER_GROUP))
    installed.append(EntryPoint("acme", f"{__name__}:ACME_SIM", registry.SIMULATOR_GROUP))
    assert providers.adapter_for("acme") is ACME
    assert sim_app.simulators()["acme"] is ACME_SIM


def test_a_name_registered_twice_or_a_wrong_object_is_refused(installed: list[EntryPoint]) -> None:
    installed.append(EntryPoint("callkaro", f"{__name__}:ACME", registry.ADAPTER_GROUP))
    with pytest.raises(RuntimeError, match="registered twice"):
        providers.adapters()
    installed.clear()
    installed.append(EntryPoint("other", f"{__name__}:ACME", registry.ADAPTER_GROUP))  # named acme
    with pytest.raises(TypeError, match="not an Adapter named so"):
        providers.adapters()
