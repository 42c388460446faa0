"""Which providers outdial knows: one literal table, plus what installed packages add.

Each provider is one line here, naming its adapter (``outdial.services.providers``)
and its simulator (``outdial.simulator``) as ``module:attribute``, the notation
of entry points. Nothing is found by its presence in a folder.

A third-party package adds a provider without touching outdial, through two
entry-point groups of its distribution::

    [project.entry-points."outdial.providers"]
    acme = "acme_outdial.adapter:ADAPTER"        # an outdial.services.providers.base.Adapter
    [project.entry-points."outdial.simulators"]
    acme = "acme_outdial.simulator:SIMULATOR"    # an outdial.simulator.base.ProviderSim (optional)

This module names, it never imports: the adapters (services) and the simulator (a
face that stands apart from the engine) each load their own side.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

ADAPTER_GROUP = "outdial.providers"
SIMULATOR_GROUP = "outdial.simulators"


@dataclass(frozen=True)
class Provider:
    name: str
    adapter: str  # module:attribute of its Adapter
    simulator: str  # module:attribute of its ProviderSim


BUILT_IN: tuple[Provider, ...] = (
    Provider("callkaro", "outdial.services.providers.callkaro:ADAPTER", "outdial.simulator.callkaro:SIMULATOR"),
    Provider("mobtexting", "outdial.services.providers.mobtexting:ADAPTER", "outdial.simulator.mobtexting:SIMULATOR"),
    Provider("nixflex", "outdial.services.providers.nixflex:ADAPTER", "outdial.simulator.nixflex:SIMULATOR"),
    Provider("nlpearl", "outdial.services.providers.nlpearl:ADAPTER", "outdial.simulator.nlpearl:SIMULATOR"),
    Provider("trillet", "outdial.services.providers.trillet:ADAPTER", "outdial.simulator.trillet:SIMULATOR"),
)


def registered(group: str) -> list[EntryPoint]:
    """The built-in providers' entries of ``group``, then the installed packages'; a name twice is refused."""
    side = {ADAPTER_GROUP: "adapter", SIMULATOR_GROUP: "simulator"}[group]
    found = [EntryPoint(p.name, getattr(p, side), group) for p in BUILT_IN]
    for entry in entry_points(group=group):
        if any(e.name == entry.name for e in found):
            raise RuntimeError(f"provider {entry.name!r} is registered twice in {group} (by {entry.value})")
        found.append(entry)
    return found
