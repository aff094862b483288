"""The docs are part of the product: every command is in the README, every key in the example."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from tradepipe.cli import app

ROOT = Path(__file__).resolve().parent.parent


def command_paths(group, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands") and command.commands:
            paths.extend(command_paths(command, path))
        if not getattr(command, "commands", None) or getattr(
            command, "invoke_without_command", False
        ):
            paths.append(path)
    return paths


def test_every_cli_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [
        " ".join(p)
        for p in command_paths(typer.main.get_command(app))
        if f"tradepipe {' '.join(p)}" not in readme
    ]
    assert missing == []


def test_every_command_has_help_text():
    group = typer.main.get_command(app)

    def walk(command, name):
        assert command.help, f"{name} has no help text"
        for child_name, child in getattr(command, "commands", {}).items():
            walk(child, f"{name} {child_name}")

    walk(group, "tradepipe")


def test_readme_setup_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(r"pip install -e '\.\[test\]' && \.venv/bin/python -m pytest", readme)
    assert test_command, "the README's test command changed: keep .ci/run in step"
    assert ".venv/bin/pip install --quiet -e '.[test]'" in ci and ".venv/bin/python -m pytest" in ci
