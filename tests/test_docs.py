"""Every command has help text with an example, and docs/cli.md documents every command, every
option and the example (as sqlite-utils' tests/test_docs.py does)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from layerprop.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
COMMANDS = sorted(cli.commands)


@pytest.fixture(scope="module")
def sections():
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^## layerprop (\S+)\s*$", text, flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2])}


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_documented(sections, command):
    assert command in sections, f"docs/cli.md has no '## layerprop {command}' section"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_documented(sections, command):
    body = sections.get(command, "")
    for param in cli.commands[command].params:
        if isinstance(param, click.Option) and not param.hidden:
            for name in param.opts + param.secondary_opts:
                if name.startswith("--"):
                    assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", body), \
                        f"{command}: option {name} is not in docs/cli.md"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_that_the_docs_show(sections, command):
    cmd = cli.commands[command]
    assert cmd.help and cmd.help.strip(), f"{command} has no help text"
    epilog = cmd.epilog or ""
    assert "Example:" in epilog, f"{command} --help does not end with an example"
    example = epilog.split("Example:", 1)[1].strip()
    assert example.startswith(f"layerprop {command}")
    assert example in sections.get(command, ""), f"{command}: the --help example is not in docs/cli.md"


def test_no_undocumented_extra_sections(sections):
    assert set(sections) <= set(COMMANDS), set(sections) - set(COMMANDS)
