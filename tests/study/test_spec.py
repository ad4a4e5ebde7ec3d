import re

import pytest

from xsearch.common.resources import resolve, shipped_files
from xsearch.model.space import SearchSpace
from xsearch.study.spec import (
    AshaSpec,
    DataSpec,
    EarlyStopSpec,
    LatencySpec,
    StudySpec,
    TrackingSpec,
    TrainingSpec,
    TransferSpec,
    load_study_spec,
)


def test_every_shipped_study_loads_with_its_space():
    names = sorted(shipped_files("studies"))
    assert {"quickstart", "imagenet-small", "cifar10", "paper-spectrum", "cats-vs-dogs"} <= set(
        names
    )
    for name in names:
        spec = load_study_spec(name)
        assert spec.name == name
        assert spec.description
        SearchSpace.from_toml(spec.space)


def test_layering_command_line_over_file_over_defaults():
    spec = load_study_spec("quickstart")
    assert spec.data.source == "digits"
    assert spec.training.bn_momentum == 0.9  # file
    assert spec.training.weight_decay == StudySpec().training.weight_decay  # default
    overridden = spec.override(trials=2, timeout=None, seed=7, data_dir="/data")
    assert (overridden.trials, overridden.timeout, overridden.seed) == (2, spec.timeout, 7)
    assert overridden.data.data_dir == "/data"
    assert overridden.data.source == "digits"
    assert spec.override(batch_size="128").training.batch_size == 128
    assert spec.override(batch_size="auto").training.batch_size == "auto"


def test_objectives_map_to_metrics_and_directions():
    spec = StudySpec(objectives=("accuracy", "flops", "throughput"))
    assert [(o.metric, o.direction) for o in spec.objective_list] == [
        ("val_accuracy", "maximize"),
        ("flops", "minimize"),
        ("throughput", "maximize"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trails = 3\n", "unknown key 'trails'. Did you mean 'trials'?"),
        ("[training]\nepocs = 3\n", "unknown key 'epocs'. Did you mean 'epochs'?"),
        (
            'objectives = ["accuracy", "speed"]\n',
            "objectives: unknown value 'speed'; valid: accuracy, params",
        ),
        (
            'sampler = "cmaes"\n',
            "sampler: unknown value 'cmaes'; valid: tpe, nsga2, gp, random, grid",
        ),
        ("[constraints]\nmax_param = 5\n", "constraints: unknown value 'max_param'"),
        ("[constraints]\nmax_params = -5\n", "constraints.max_params must be a positive number"),
        ("trials = 0\n", "trials must be an integer > 0; received 0"),
        ('[training]\nepochs = "ten"\n', "training.epochs must be an integer; received 'ten'"),
        ("[data]\nval_fraction = 0.95\n", "data.val_fraction must be in (0, 0.9)"),
        ("[data]\nval_fraction = 0\n", "data.val_fraction must be in (0, 0.9); received 0"),
        ("[data]\ntest_fraction = 0.9\n", "data.test_fraction must be in [0, 0.9)"),
        (
            "[data]\nsplit_seed = -1\n",
            "data.split_seed must be an integer in [0, 4294967295]; received -1",
        ),
        (
            '[data]\nsplit_seed = "zero"\n',
            "data.split_seed must be an integer in [0, 4294967295]; received 'zero'",
        ),
        (
            '[training]\nbatch_size = "max"\n',
            "training.batch_size must be an integer > 0 or 'auto'; received 'max'",
        ),
        ("trials = \n", "malformed TOML"),
        (
            "[early_stop]\nafter = 2\n",
            "[early_stop]: unknown key 'after'. Valid keys: after_epochs, margin.",
        ),
        (
            "[early_stop]\nafter_epochs = 10\n",
            "early_stop.after_epochs must be an integer in [1, training.epochs - 1 = 9]",
        ),
        (
            "[early_stop]\nmargin = 2\n",
            "early_stop.margin must be in (0, 1) (accuracy, as a fraction); received 2",
        ),
        (
            'objectives = ["accuracy", "throughput"]\n[early_stop]\n',
            "early_stop needs the accuracy objective",
        ),
        (
            'objectives = ["params", "latency"]\n[early_stop]\n',
            "objectives are ['params', 'latency']",
        ),
        (
            "[asha]\neta = 3\n",
            "[asha]: unknown key 'eta'. Valid keys: continue_stopped, min_epochs, reduction_factor.",
        ),
        (
            "[asha]\nmin_epochs = 10\n",
            "asha.min_epochs must be an integer in [1, training.epochs - 1 = 9]; received 10",
        ),
        (
            "[asha]\nreduction_factor = 1\n",
            "asha.reduction_factor must be an integer >= 2; received 1",
        ),
        ('objectives = ["accuracy", "throughput"]\n[asha]\n', "asha needs the accuracy objective"),
        (
            'objectives = ["accuracy", "latency@gpu"]\n',
            "objectives: unknown latency target 'gpu' in 'latency@gpu'",
        ),
        (
            '[constraints]\n"max_latency_ms@phone" = 5\n',
            "constraints: unknown latency target 'phone' in 'max_latency_ms@phone'",
        ),
        (
            '[latency]\ntargets = ["tpu"]\n',
            "latency.targets: unknown latency target 'tpu'; valid targets: "
            "train-device, cpu, litert-cpu, onnxruntime-cpu, remote",
        ),
        ('[latency]\ntargets = "cpu"\n', "latency.targets must be a list; received 'cpu'"),
        ("[latency]\nthreads = 0\n", "latency.threads must be an integer > 0; received 0"),
        (
            '[latency]\nremote_format = "savedmodel"\n',
            "latency.remote_format: unknown value 'savedmodel'; valid: tflite, onnx",
        ),
        (
            'objectives = ["accuracy", "latency@remote"]\n',
            "the latency target 'remote' needs [latency] remote_url",
        ),
        (
            '[latency]\nremote_url = "127.0.0.1:8765"\n',
            "latency.remote_url must be an http:// or https:// URL",
        ),
    ],
)
def test_bad_study_files_name_file_key_and_valid_values(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        load_study_spec(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        (
            DataSpec,
            {"image_size": 4},
            "data.image_size must be an integer in [7, 1024]; received 4",
        ),
        (DataSpec, {"test_fraction": 0.9}, "data.test_fraction must be in [0, 0.9); received 0.9"),
        (
            TrainingSpec,
            {"optimizer": "lamb"},
            "training.optimizer: unknown value 'lamb'; valid: adam, adamw, sgd",
        ),
        (
            TrainingSpec,
            {"epochs": 2, "warmup_epochs": 3},
            "training.warmup_epochs must be an integer in [0, training.epochs = 2]",
        ),
        (
            EarlyStopSpec,
            {"margin": 2},
            "early_stop.margin must be in (0, 1) (accuracy, as a fraction); received 2",
        ),
        (
            AshaSpec,
            {"reduction_factor": 1},
            "asha.reduction_factor must be an integer >= 2; received 1",
        ),
        (
            TransferSpec,
            {"fine_tune_learning_rate": 0},
            "transfer.fine_tune_learning_rate must be a number > 0; received 0",
        ),
        (
            LatencySpec,
            {"targets": ("tpu",)},
            "latency.targets: unknown latency target 'tpu'; valid targets: train-device",
        ),
        (
            LatencySpec,
            {"remote_url": "127.0.0.1:8765"},
            "latency.remote_url must be an http:// or https:// URL",
        ),
        (
            TrackingSpec,
            {"mlflow_experiment": " "},
            "tracking.mlflow_experiment must be a non-empty string; received ' '",
        ),
    ],
)
def test_each_section_checks_its_own_keys_when_built(section, values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        section(**values)


def test_checks_across_sections_are_the_studys():
    rule = EarlyStopSpec(after_epochs=5)  # valid alone: its bound is the training's epochs
    with pytest.raises(
        ValueError,
        match=r"early_stop.after_epochs must be an integer in \[1, training.epochs - 1 = 3\]",
    ):
        StudySpec(training=TrainingSpec(epochs=4), early_stop=rule)
    assert StudySpec(training=TrainingSpec(epochs=6), early_stop=rule).early_stop == rule


def test_unknown_study_lists_known_ones():
    with pytest.raises(KeyError, match=r"unknown study 'quikstart'. Did you mean 'quickstart'"):
        load_study_spec("quikstart")


def test_an_asha_section_is_read_and_round_trips_through_the_stored_spec(tmp_path):
    path = tmp_path / "asha.toml"
    path.write_text("[asha]\nmin_epochs = 2\nreduction_factor = 2\n")
    spec = load_study_spec(path)
    assert spec.asha == AshaSpec(min_epochs=2, reduction_factor=2)
    assert spec.early_stop is None
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_latency_targets_come_from_objectives_constraints_and_the_latency_table(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(
        'objectives = ["accuracy", "params", "latency", "latency@litert-cpu"]\n'
        '[constraints]\n"max_latency_ms@onnxruntime-cpu" = 5.0\n'
        '[latency]\ntargets = ["cpu", "litert-cpu", "train-device"]\nthreads = 2\n'
    )
    spec = load_study_spec(path)
    assert spec.latency == LatencySpec(targets=("cpu", "litert-cpu", "train-device"), threads=2)
    assert spec.scored_latency_targets == ("litert-cpu", "onnxruntime-cpu")
    assert spec.latency_targets == ("litert-cpu", "onnxruntime-cpu", "cpu")
    assert [(o.metric, o.direction) for o in spec.objective_list][2:] == [
        ("latency_ms", "minimize"),
        ("latency_ms@litert-cpu", "minimize"),
    ]
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_a_study_without_a_latency_table_stores_its_spec_as_before():
    assert "latency" not in StudySpec().to_dict()
    assert StudySpec().latency_targets == ()
    assert "latency" in StudySpec(latency=LatencySpec()).to_dict()


def test_a_split_seed_fixes_the_splits_whatever_the_study_seed(tmp_path):
    from xsearch.study.setup import load_spec_dataset

    data = DataSpec(
        source="digits", image_size=8, val_fraction=0.2, test_fraction=0.2, split_seed=1
    )
    fixed = [load_spec_dataset(StudySpec(seed=seed, data=data)).y_val for seed in (0, 7)]
    free = [
        load_spec_dataset(StudySpec(seed=seed, data=DataSpec(source="digits", image_size=8))).y_val
        for seed in (0, 7)
    ]
    assert (fixed[0] == fixed[1]).all()
    assert not (free[0] == free[1]).all()


def test_a_search_space_given_as_a_study_is_named_as_such_once():
    with pytest.raises(
        ValueError, match=re.escape("is a search-space file ([axes]), not a study file")
    ) as error:
        load_study_spec(resolve("search_spaces", "tiny"))
    message = str(error.value)
    assert 'space = "' in message
    assert message.count("tiny.toml") == 2  # the file, then how a study names it: no doubled prefix
