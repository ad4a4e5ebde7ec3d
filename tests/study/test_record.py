"""The trial record names every attribute once: keys, types, and the study spec stored on a study."""

import ast
import dataclasses
import typing
from pathlib import Path

import optuna
import pytest

from xsearch.model.costs import ModelCosts
from xsearch.model.device import RuntimeInfo
from xsearch.study.fit import TrainResult
from xsearch.study.record import FailureReason, StudyAttr, StudyRecord, TrialAttr, TrialRecord
from xsearch.study.spec import EarlyStopSpec, StudySpec, TrainingSpec, read_spec, write_spec

ROOT = Path(__file__).resolve().parents[2]
USER_ATTR_CALLS = ("set_user_attr", "set_trial_user_attr")


def _keys(kind: type) -> set[str]:
    return {value for name, value in vars(kind).items() if name.isupper()}


def test_each_key_has_one_type_and_each_type_one_key():
    assert _keys(TrialAttr) == set(typing.get_type_hints(TrialRecord))
    assert _keys(StudyAttr) == set(typing.get_type_hints(StudyRecord))
    assert typing.get_type_hints(TrialRecord)[TrialAttr.FAILURE_REASON] is FailureReason


def test_the_records_that_the_objective_copies_in_use_the_trial_keys():
    copied = {
        *typing.get_type_hints(ModelCosts),
        *typing.get_type_hints(RuntimeInfo),
        *(field.name for field in dataclasses.fields(TrainResult)),
    }
    assert copied <= set(typing.get_type_hints(TrialRecord))


def _literal_keys(path: Path) -> list[str]:
    """Places where a file spells a user-attr key as a string: ``x.user_attrs["k"]``, ``.get("k")`` on
    user attrs, ``"k" in x.user_attrs`` and ``set_user_attr("k", ...)``."""
    found = []

    def is_user_attrs(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "user_attrs"

    for node in ast.walk(ast.parse(path.read_text())):
        key = None
        if isinstance(node, ast.Subscript) and is_user_attrs(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (
                node.func.attr == "get" and is_user_attrs(node.func.value)
            ) or node.func.attr in USER_ATTR_CALLS:
                key = node.args[-2] if node.func.attr == "set_trial_user_attr" else node.args[0]
        elif isinstance(node, ast.Compare) and any(is_user_attrs(c) for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {key.value!r}")
    return found


def test_no_module_but_the_record_spells_an_attribute_key():
    files = [
        p
        for p in [
            *ROOT.joinpath("xsearch").rglob("*.py"),
            *ROOT.joinpath("dashboards").rglob("*.py"),
        ]
        if p.name != "record.py"
    ]
    assert [place for path in files for place in _literal_keys(path)] == []


def test_the_literal_key_check_finds_one(tmp_path):
    sample = ROOT / "xsearch" / "_sample_for_test.py"
    try:
        sample.write_text(
            'trial.set_user_attr("val_accuracy", 1)\nx = t.user_attrs.get("params")\n'
        )
        assert len(_literal_keys(sample)) == 2
    finally:
        sample.unlink()


def test_a_stored_spec_reads_back_equal():
    spec = StudySpec(
        name="s",
        trials=7,
        constraints={"max_params": 1e6},
        seed_trials=("paper", {"width": 0.5}),
        training=TrainingSpec(epochs=4, batch_size="auto"),
        early_stop=EarlyStopSpec(after_epochs=2),
    )
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    write_spec(study, spec)
    assert read_spec(study) == spec
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_a_study_without_a_spec_or_with_a_bad_one_is_named():
    study = optuna.create_study(study_name="plain")
    with pytest.raises(ValueError, match=r"'plain'.*not made by xsearch run"):
        read_spec(study)
    with pytest.raises(ValueError, match="unknown key 'epochz'"):
        StudySpec.from_dict({"training": {"epochz": 3}}, source="stored")
