"""The documentation site: it builds under ``mkdocs build --strict``, the README links into it, its figures render."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 150
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_readme_is_short_and_its_links_and_pictures_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert any(target.startswith("docs/images/") for target in local)
    assert sum(target.startswith("docs/") and target.endswith(".md") for target in local) >= 5
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_image_the_docs_show_exists():
    for page in (ROOT / "docs").rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.relative_to(ROOT)}: {target}"


@pytest.mark.slow
def test_the_site_builds_strictly_with_the_generated_references(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study_file = (site / "reference" / "study-file" / "index.html").read_text()
    assert "max_bad_fraction" in study_file
    assert "fine_tune_learning_rate" in study_file
    assert "mlflow_uri" in study_file
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "--max-failures" in cli
    assert "<code>NAME|PATH</code>" in cli  # a pipe in a code span is not escaped
    assert (
        'id="xsearch.optuna.make_objective"'
        in (site / "reference" / "api" / "index.html").read_text()
    )
    assert not list(site.rglob("*.py")), "the hooks and scripts are not published"


@pytest.mark.slow
def test_the_docs_figures_render_to_png_in_chromium(require_browser, tmp_path):
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    try:
        import figures
    finally:
        sys.path.remove(str(ROOT / "docs" / "scripts"))
    figure, height = figures.analysis_figures(figures.BENCH_TABLE)["xception-bench-effects"]
    path = figures.render_png(figure, tmp_path / "effects.png", 400, height)
    assert path.read_bytes().startswith(PNG)
    assert path.stat().st_size > 10_000
