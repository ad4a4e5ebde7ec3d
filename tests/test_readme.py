from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme_commands = ROOT.joinpath("README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    setup, test = readme_commands.strip().splitlines()[:2]
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert ci[-1] == test
    assert ".venv/bin/pip install -e '.[test]'" in setup.replace("-q ", "")
