from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme_commands = ROOT.joinpath("README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    setup, test = readme_commands.strip().splitlines()[:2]
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert ci[-1] == test
    assert ".venv/bin/pip install -e '.[test]'" in setup.replace("-q ", "")


def test_the_readme_study_file_example_is_a_valid_study(tmp_path):
    from xsearch.study.spec import load_study_spec

    blocks = ROOT.joinpath("README.md").read_text().split("```toml\n")[1:]
    example = next(block.split("```", 1)[0] for block in blocks if block.startswith('description = "..."'))
    path = tmp_path / "example.toml"
    path.write_text(example)
    spec = load_study_spec(path)
    assert spec.constraints == {"max_params": 5_000_000} and spec.early_stop is not None
