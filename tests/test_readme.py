from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme_commands = (
        ROOT.joinpath("README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    )
    setup, test = readme_commands.strip().splitlines()[:2]
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert ci[-1] == test
    assert ".venv/bin/pip install -e '.[test]'" in setup.replace("-q ", "")


def test_the_readme_study_file_example_is_a_valid_study(tmp_path):
    from xsearch.study.spec import load_study_spec

    blocks = ROOT.joinpath("README.md").read_text().split("```toml\n")[1:]
    example = next(
        block.split("```", 1)[0] for block in blocks if block.startswith('description = "..."')
    )
    path = tmp_path / "example.toml"
    path.write_text(example)
    spec = load_study_spec(path)
    assert spec.constraints == {"max_params": 5_000_000}
    assert spec.early_stop is not None


def test_pre_commit_runs_the_checks_ci_runs_first():
    import subprocess
    import sys

    import yaml

    config = ROOT / ".pre-commit-config.yaml"
    pre_commit = Path(sys.executable).with_name("pre-commit")
    subprocess.run(
        [str(pre_commit), "validate-config", str(config)], check=True, capture_output=True
    )
    hooks = {
        hook["id"]: hook
        for repo in yaml.safe_load(config.read_text())["repos"]
        for hook in repo["hooks"]
    }
    ci_checks = ROOT.joinpath(".ci", "run").read_text().splitlines()[-1]
    assert hooks["ruff"]["entry"].startswith("ruff check")
    assert ".venv/bin/ruff check" in ci_checks
    assert hooks["ruff-format"]["entry"].startswith("ruff format --check")
    assert ".venv/bin/ruff format --check" in ci_checks
    assert hooks["mypy"]["entry"] == "mypy"
    assert ".venv/bin/mypy &&" in ci_checks
    # the whole package, as configured in pyproject, as CI does
    assert hooks["mypy"]["pass_filenames"] is False
