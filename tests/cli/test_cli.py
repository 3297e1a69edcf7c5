"""The CLI imports only the subcommand it runs; the map must stay complete."""

import argparse

from peninsula.cli import main as cli


def test_module_map_names_every_subcommand():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.MODULE_OF)
    for name, module in cli.MODULE_OF.items():
        only = cli.build_parser((module,))
        only_sub = next(a for a in only._actions if isinstance(a, argparse._SubParsersAction))
        assert name in only_sub.choices


def test_selective_import():
    assert cli._modules_for(["run", "--", "ls", "-la"]) == ("run",)
    assert cli._modules_for(["--help"]) == cli.COMMANDS
    assert cli._modules_for(["bogus"]) == cli.COMMANDS
    assert cli._modules_for(["--version"]) == ()
