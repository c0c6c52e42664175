"""The README's exit-code table is the whole truth: every code a command can end with is in it, and nothing
else is; every command's own `Exit codes:` help names only codes from it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import redactor_video
from redactor_video.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, main
from redactor_video.errors import RedactorError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_codes() -> dict[int, str]:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def error_codes() -> set[int]:
    """The exit code of every typed error anywhere in the package (each module imported to find them)."""
    for module in pkgutil.walk_packages(redactor_video.__path__, "redactor_video."):
        if module.name != "redactor_video.__main__":  # it runs the command line
            importlib.import_module(module.name)
    found, todo = set(), [RedactorError]
    while todo:
        cls = todo.pop()
        found.add(cls.exit_code)
        todo.extend(cls.__subclasses__())
    return found


def test_the_table_lists_exactly_the_codes_commands_can_end_with() -> None:
    """0 done, 2 click's usage errors, 1 the last-resort internal error, the signal codes, and every typed
    error's code."""
    assert set(readme_codes()) == error_codes() | {0, 1, 2, EXIT_INTERRUPTED, EXIT_TERMINATED}


@pytest.mark.parametrize("command", sorted(main.list_commands(None)))  # type: ignore[arg-type]
def test_every_command_help_names_only_documented_codes(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"]).output
    if "Exit codes:" not in text:
        return
    section = text.split("Exit codes:", 1)[1].split("\n\n", 1)[0]
    named = {int(n) for n in re.findall(r"(?<![\w.-])(\d{1,3})(?= )", section)}
    assert named and named <= set(readme_codes()), section
