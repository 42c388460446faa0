"""``python -m bench``: every subcommand it lists names a module with a ``main``, and an unknown one is refused."""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import SUBCOMMANDS, main


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_a_main(name: str) -> None:
    module_name, about = SUBCOMMANDS[name]
    assert about
    assert callable(importlib.import_module(module_name).main)


def test_an_unknown_subcommand_lists_them_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nonsense"]) == 2
    listed = capsys.readouterr().out
    assert all(name in listed for name in SUBCOMMANDS)
