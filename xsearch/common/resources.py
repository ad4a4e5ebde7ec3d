"""Finds the named TOML files that ship with xsearch (`search_spaces/`, `studies/`)."""

from __future__ import annotations

import difflib
import importlib.resources
import tomllib
from pathlib import Path
from typing import Any


def shipped_files(kind: str) -> dict[str, Path]:
    """Map name -> path of the shipped ``kind`` files (``"search_spaces"`` or ``"studies"``)."""
    folder = importlib.resources.files(f"xsearch.{kind}")
    return {
        entry.name.removesuffix(".toml"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def resolve(kind: str, name_or_path: str | Path) -> Path:
    """A path to a TOML file: an existing file, else the shipped one of that name."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        if not candidate.is_file():
            raise FileNotFoundError(f"{candidate}: no such file.")
        return candidate
    known = shipped_files(kind)
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    label = {"studies": "study", "search_spaces": "search space"}[kind]
    close = difflib.get_close_matches(str(name_or_path), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise KeyError(
        f"unknown {label} {str(name_or_path)!r}.{hint} Known: {', '.join(sorted(known))} "
        "(or give the path of a .toml file)."
    )


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file and the line."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: malformed TOML: {error}.") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not a TOML text file: byte {error.start} is not UTF-8 text."
        ) from None


def unknown_keys_error(source: str, unknown: str, valid: list[str]) -> ValueError:
    """An error naming an unknown key, the closest valid one and all valid ones."""
    close = difflib.get_close_matches(unknown, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"{source}: unknown key {unknown!r}.{hint} Valid keys: {', '.join(valid)}.")
