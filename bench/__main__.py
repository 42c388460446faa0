"""``python -m bench SUBCOMMAND [options]``: a small dispatcher, one module per benchmark.

Each subcommand names a module and its ``main(argv) -> int``; add a line to
:data:`SUBCOMMANDS` to add one.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "import": ("bench.import_bench", "CSV import of a large lead file against PostgreSQL, with its floor"),
    "perf": ("bench.perf", "Dispatch, latency, scheduler, memory, lateness and import, as ratios to baselines"),
    "parts": ("bench.dispatch_parts", "Per-call CPU of each part of a dispatch, next to the ideal task"),
    "pacing": ("bench.pacing", "Rate and concurrency limits measured from the provider's side"),
    "webhooks": ("bench.webhooks", "Webhook p50/p99 during a burst of concurrent POST /calls, on loopback"),
    "chaos": ("bench.chaos", "Faults injected into the whole stack, then every promise to users checked"),
    "cli": ("bench.cli", "Start-up of the outdial command (--help) against python -c pass"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in SUBCOMMANDS:
        print("usage: python -m bench SUBCOMMAND [options]\n\nsubcommands:")
        for name, (_module, about) in SUBCOMMANDS.items():
            print(f"  {name:<10} {about}")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module_name, _about = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
