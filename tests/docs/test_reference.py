"""The generated reference pages (`docs/hooks.py`): every study-file key documented, every command and flag listed."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from docs import hooks
from xsearch.cli import build_parser
from xsearch.study import spec

DOCS = Path(hooks.__file__).parent


def undocumented(table: type) -> list[str]:
    """The fields of a spec dataclass without a ``doc`` (given with `xsearch.study.spec.doc_field`)."""
    return [
        field.name
        for field in dataclasses.fields(table)
        if not str(field.metadata.get("doc", "")).strip()
    ]


def test_every_field_of_every_study_file_table_is_documented():
    tables = hooks.spec_tables()
    assert set(tables) >= {
        "",
        "data",
        "training",
        "early_stop",
        "asha",
        "transfer",
        "latency",
        "tracking",
    }
    missing = {
        name or "top level": undocumented(table)
        for name, table in tables.items()
        if undocumented(table)
    }
    assert not missing, (
        f"document these study-file keys with doc_field(..., doc=...) in xsearch/study/spec.py: {missing}"
    )


def test_an_undocumented_key_is_caught():
    @dataclasses.dataclass(frozen=True)
    class Table:
        documented: int = spec.doc_field(1, "A key with its doc.")
        bare: int = 2

    assert undocumented(Table) == ["bare"]


def test_every_key_of_the_shipped_studies_is_in_the_reference():
    from xsearch.common.resources import load_toml, resolve, shipped_files

    tables = hooks.spec_tables()
    keys = {
        name: {field.name for field in hooks.documented_keys(table)}
        for name, table in tables.items()
    }
    for study in shipped_files("studies"):
        for key, value in load_toml(resolve("studies", study)).items():
            if key in keys:
                assert set(value) <= keys[key], f"{study} [{key}]"
            else:
                assert key in keys[""], f"{study}: {key}"


def test_the_study_file_reference_has_a_row_for_every_key_with_its_default():
    page = hooks.study_file_reference()
    for name, table in hooks.spec_tables().items():
        section = _section(page, "Top-level keys" if not name else f"[{name}]")
        for field in hooks.documented_keys(table):
            row = next(
                (line for line in section.splitlines() if line.startswith(f"| `{field.name}` |")),
                None,
            )
            assert row is not None, f"[{name}] {field.name} is not in the reference"
            default = (
                field.default_factory()
                if field.default_factory is not dataclasses.MISSING
                else field.default
            )
            assert hooks.toml_value(default) in row
            assert field.metadata["doc"].split("`")[0] in row


def test_the_reference_renders_values_as_toml():
    assert hooks.toml_value(None) == "not set"
    assert hooks.toml_value(True) == "`true`"
    assert hooks.toml_value(("a", "b")) == '`["a", "b"]`'
    assert hooks.toml_value(0.001) == "`0.001`"
    assert hooks.type_name(int | None) == "integer"
    assert hooks.type_name(tuple[str, ...]) == "list of strings"
    assert hooks.type_name(dict[str, float]) == "table of numbers"
    assert hooks.type_name(int | str) == "integer or string"
    assert hooks.valid_values("xsearch.study.spec:SAMPLERS") == ", ".join(
        f"`{s}`" for s in spec.SAMPLERS
    )


def test_the_cli_reference_lists_every_command_and_flag():
    page = hooks.cli_reference()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {
        "xsearch": parser,
        **{f"xsearch {name}": sub for name, sub in commands.choices.items()},
    }
    for title, command in parsers.items():
        section = _section(page, f"`{title}`")
        options = [
            option
            for action in command._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        ]
        assert options or title == "xsearch studies"
        for option in options:
            assert f"`{option}`" in section, (
                f"{title} {option} is not in the command-line reference"
            )


@pytest.mark.parametrize(
    ("page", "marker"),
    [("reference/study-file.md", hooks.STUDY_FILE_MARKER), ("reference/cli.md", hooks.CLI_MARKER)],
)
def test_the_reference_pages_hold_their_marker(page, marker):
    text = (DOCS / page).read_text()
    assert marker in text
    assert marker not in hooks.on_page_markdown(text)


def _section(page: str, title: str) -> str:
    """The text under the ``## title`` heading, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_every_flag_has_help_for_the_reference():
    parser = build_parser()
    bare = [
        f"{title} {action.option_strings[0]}"
        for title, command in [
            ("xsearch", parser),
            *((f"xsearch {name}", sub) for name, sub, _ in hooks.subcommands(parser)),
        ]
        for action in hooks.flags(command)
        if not action.help
    ]
    assert not bare, f"give these flags help= in xsearch/cli.py: {bare}"
