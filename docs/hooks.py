"""MkDocs hooks: the reference pages generated from the code, so that they cannot drift from it.

- ``<!-- generated: study-file -->`` becomes every study-file key, from the dataclasses of `xsearch.study.spec`
  (type, default, valid values and meaning, from each field's ``doc_field`` metadata).
- ``<!-- generated: cli -->`` becomes every command and flag, from `xsearch.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import html
import importlib
import json
import re
import types
import typing
from typing import Any

from xsearch.common.quiet import quiet_libraries

quiet_libraries()  # the reference imports xsearch's modules: no TensorFlow start-up lines in the build's output

STUDY_FILE_MARKER = "<!-- generated: study-file -->"
CLI_MARKER = "<!-- generated: cli -->"
USAGE_WIDTH = 100
_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string"}
# "module:NAME", a tuple of valid values defined elsewhere
_REFERENCE = re.compile(r"^[\w.]+:[A-Z_]+$")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the markers of the reference pages with the generated tables."""
    if STUDY_FILE_MARKER in markdown:
        markdown = markdown.replace(STUDY_FILE_MARKER, study_file_reference())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


# The study file


def spec_tables() -> dict[str, type]:
    """Every table of a study file by its key (``""`` for the top level), found from `StudySpec`'s fields."""
    from xsearch.study.spec import StudySpec

    tables: dict[str, type] = {"": StudySpec}
    for field in dataclasses.fields(StudySpec):
        table = _dataclass_of(typing.get_type_hints(StudySpec)[field.name])
        if table is not None:
            tables[field.name] = table
    return tables


def study_file_reference() -> str:
    """The study file's keys as Markdown: the top-level keys, then one section per table."""
    from xsearch.study.spec import StudySpec

    hints = typing.get_type_hints(StudySpec)
    docs = {field.name: field.metadata["doc"] for field in dataclasses.fields(StudySpec)}
    tables = {name: table for name, table in spec_tables().items() if name}
    optional = {name: type(None) in typing.get_args(hints[name]) for name in tables}
    index = ["| table | meaning |", "|---|---|"]
    index += [
        f"| [`[{name}]`](#{name}) | {docs[name]}{' Optional.' if optional[name] else ''} |"
        for name in tables
    ]
    sections = [
        "## Top-level keys\n",
        _keys_table(StudySpec),
        "## Tables\n",
        "\n".join(index) + "\n",
    ]
    for name, table in tables.items():
        kind = (
            "An optional table: without it, this is off."
            if optional[name]
            else "Always there: a key left out takes its default."
        )
        sections += [f"## [{name}]\n", f"{_first_line(table.__doc__)} {kind}\n", _keys_table(table)]
    return "\n".join(sections)


def documented_keys(table: type) -> list[dataclasses.Field[Any]]:
    """The fields of a table that are keys of the file (not nested tables, not the file's name)."""
    hints = typing.get_type_hints(table)
    return [
        field
        for field in dataclasses.fields(table)
        if field.metadata.get("in_file", True) and _dataclass_of(hints[field.name]) is None
    ]


def _keys_table(table: type) -> str:
    hints = typing.get_type_hints(table)
    rows = ["| key | type | default | valid values | meaning |", "|---|---|---|---|---|"]
    for field in documented_keys(table):
        meta = field.metadata
        default = (
            field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        cells = (
            f"`{field.name}`",
            type_name(hints[field.name]),
            toml_value(default),
            valid_values(meta.get("valid")),
            meta.get("doc", ""),
        )
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a type hint names (alone or with None), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def type_name(hint: Any) -> str:
    """A type hint in TOML's words: ``int | None`` -> integer, ``tuple[str, ...]`` -> list of strings."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        names = [type_name(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return " or ".join(names)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return "list" if args[0] is Any else f"list of {type_name(args[0])}s"
    if origin is dict:
        return f"table of {type_name(args[1])}s"
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def toml_value(value: Any) -> str:
    """A default as it is written in TOML; "not set" for None."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`" if isinstance(value, (str, list, dict)) else f"`{value!r}`"


def valid_values(valid: Any) -> str:
    """The valid values: a tuple listed, ``"module:NAME"`` imported and listed, a sentence as it is."""
    if valid is None:
        return ""
    if isinstance(valid, str) and _REFERENCE.match(valid):
        module, name = valid.split(":")
        valid = getattr(importlib.import_module(module), name)
    if isinstance(valid, (tuple, list)):
        return ", ".join(f"`{value}`" for value in valid)
    return str(valid)


def _cell(text: str) -> str:
    """A table cell: its pipes escaped, except inside code spans (where the tables extension leaves them alone)."""
    parts = text.split("`")
    return "`".join(
        part if index % 2 else part.replace("|", "\\|") for index, part in enumerate(parts)
    )


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").split("\n\n")[0].split())


# The command line


def cli_reference() -> str:
    """Every command and flag of `xsearch` as Markdown: the global options, then one section per command."""
    from xsearch.cli import build_parser

    parser = build_parser()
    sections = [_command_section("xsearch", "Options that go before the command", parser)]
    for name, sub, help_text in subcommands(parser):
        sections.append(_command_section(f"xsearch {name}", help_text, sub))
    return "\n".join(sections)


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """Each command of the parser: its name, its parser and its one-line help."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of a parser, without ``--help`` and the subcommands."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def _command_section(title: str, help_text: str, parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=USAGE_WIDTH)
    usage = parser.format_usage().removeprefix("usage: ").strip()
    rows = ["| flag | value | default | meaning |", "|---|---|---|---|"]
    for action in flags(parser):
        meaning = html.escape(action.help or "", quote=False) + (
            " (required)" if action.required else ""
        )
        cells = (
            ", ".join(f"`{option}`" for option in action.option_strings),
            _value(action),
            _default(action),
            meaning,
        )
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    table = "\n".join(rows) + "\n" if len(rows) > 2 else "No options.\n"
    return f"## `{title}`\n\n{html.escape(help_text, quote=False)}.\n\n```text\n{usage}\n```\n\n{table}"


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return " | ".join(f"`{choice}`" for choice in action.choices)
    metavar = action.metavar or (
        action.type.__name__.upper() if isinstance(action.type, type) else action.dest.upper()
    )
    return f"`{metavar}`"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"
