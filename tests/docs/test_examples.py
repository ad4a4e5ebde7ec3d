"""The docs' runnable examples run: every code block after a ``<!-- runnable -->`` line in ``docs/``.

- ``python``: executed in a fresh namespace, in a temporary working folder;
- ``toml``: loaded as a study file, or as a search space when it has ``[axes]``, as ``xsearch run`` would;
- ``bash``: each line is an ``xsearch`` command, run in-process by `xsearch.cli.main` (exit status 0).

Snippet lines (``--8<-- "path"``) are read from the repository, as the site's build includes them. Keep runnable
examples to seconds; an example that trains stays unmarked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w+)")
SNIPPET = re.compile(r'^--8<-- "([^":]+)"$')
LANGUAGES = ("python", "toml", "bash")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the fence, 1-based
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(DOCS)}:{self.line}"


def collect(root: Path = DOCS) -> list[Example]:
    """Every block after a runnable marker in the Markdown files under ``root``; ValueError for a marker without one."""
    examples = []
    for path in sorted(root.rglob("*.md")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip() != MARKER:
                continue
            fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
            if fence is None:
                raise ValueError(f"{path}:{index + 1}: {MARKER} must come right before a ``` fence")
            end = next(i for i in range(index + 2, len(lines)) if lines[i].startswith("```"))
            code = "\n".join(_expand(body) for body in lines[index + 2 : end]) + "\n"
            examples.append(Example(path, index + 2, fence.group(1), code))
    return examples


def _expand(line: str) -> str:
    snippet = SNIPPET.match(line.strip())
    return (ROOT / snippet.group(1)).read_text().rstrip("\n") if snippet else line


EXAMPLES = collect()


def test_every_language_has_runnable_examples_and_every_marker_a_known_language():
    assert {example.language for example in EXAMPLES} == set(LANGUAGES), [e.id for e in EXAMPLES]


def test_a_marker_without_a_fence_is_an_error(tmp_path):
    (tmp_path / "page.md").write_text(f"{MARKER}\nno fence here\n")
    with pytest.raises(ValueError, match="must come right before"):
        collect(tmp_path)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_runnable_example(example, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    {"python": _run_python, "toml": _load_toml, "bash": _run_xsearch}[example.language](
        example, tmp_path
    )


def _run_python(example: Example, folder: Path) -> None:
    exec(compile(example.code, example.id, "exec"), {"__name__": "__docs_example__"})


def _load_toml(example: Example, folder: Path) -> None:
    import tomllib

    from xsearch.model.space import SearchSpace
    from xsearch.study.spec import load_study_spec

    path = folder / "example.toml"
    path.write_text(example.code)
    if "axes" in tomllib.loads(example.code):
        SearchSpace.from_toml(path)
    else:
        load_study_spec(path)


def _run_xsearch(example: Example, folder: Path) -> None:
    from xsearch.cli import main

    for line in (line.split("#", 1)[0].strip() for line in example.code.splitlines()):
        if not line:
            continue
        argv = shlex.split(line)
        assert argv[0] == "xsearch", (
            f"{example.id}: a runnable bash block holds xsearch commands only: {line!r}"
        )
        try:
            status = main(argv[1:])
        except SystemExit as done:  # --help
            status = done.code
        assert status in (None, 0), f"{example.id}: {line!r} exited with {status}"
