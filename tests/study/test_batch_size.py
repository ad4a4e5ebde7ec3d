"""``batch_size = "auto"``: the probe's rule, the largest design, and one probe per study."""

import dataclasses

import pytest

from xsearch.model.builder import build_model
from xsearch.model.costs import model_costs
from xsearch.model.device import runtime_info
from xsearch.model.space import SearchSpace
from xsearch.run.runner import run_study
from xsearch.study import setup
from xsearch.study.batch_size import BatchProbe, batch_limit, largest_design, probe_batch_size
from xsearch.study.setup import prepare_study

OOM = RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB")


def test_the_probe_stops_where_doubling_the_batch_no_longer_pays():
    rates = {8: 100.0, 16: 190.0, 32: 300.0, 64: 320.0, 128: 330.0}
    probe = probe_batch_size(rates.__getitem__, limit=1024)
    assert (probe.batch_size, probe.stopped_by) == (32, "plateau")
    assert list(probe.images_per_second) == [8, 16, 32, 64]


def test_the_probe_takes_the_largest_batch_that_fits_in_memory():
    def rate(batch):
        if batch >= 256:
            raise OOM
        return 10.0 * batch

    probe = probe_batch_size(rate, limit=1024)
    assert (probe.batch_size, probe.stopped_by) == (128, "oom")


def test_the_probe_stays_within_the_limit():
    probe = probe_batch_size(lambda batch: 10.0 * batch, limit=64)
    assert (probe.batch_size, probe.stopped_by) == (64, "limit")


def test_a_design_that_never_fits_is_a_clear_error_and_other_errors_pass_through():
    with pytest.raises(ValueError, match=r"does not train at batch 8 .*give training.batch_size"):
        probe_batch_size(lambda batch: (_ for _ in ()).throw(OOM), limit=64)
    with pytest.raises(KeyError):
        probe_batch_size({}.__getitem__, limit=64)


def test_the_limit_leaves_eight_steps_an_epoch():
    assert batch_limit(1_281_167) == 1024
    assert batch_limit(240) == 16
    assert batch_limit(10) == 8


@pytest.mark.parametrize("name", ["quickstart", "tiny"])
@pytest.mark.slow
def test_the_largest_design_has_the_most_weights_of_the_space(name):
    space = SearchSpace.from_toml(name)
    largest = largest_design(space)
    assert space.contains(largest)

    def params(config):
        return model_costs(build_model(config, (32, 32, 3), 10))["params"]

    assert all(params(largest) >= params(space.decode(corner)) for corner in space.corners())


@pytest.mark.slow
def test_auto_batch_size_is_probed_once_and_used_by_every_trial(tmp_path, tiny_spec, monkeypatch):
    spec = dataclasses.replace(
        tiny_spec, trials=1, training=dataclasses.replace(tiny_spec.training, batch_size="auto")
    )
    study = run_study(spec, tmp_path / "run", progress=False)
    chosen = study.user_attrs["batch_size"]
    assert chosen in (8, 16, 32)  # 300 training images: at most 32, for 8 steps an epoch
    probe = study.user_attrs["batch_size_probe"]
    rates = {int(batch): rate for batch, rate in probe["images_per_second"].items()}
    assert probe["device"] == runtime_info()["device"]
    assert chosen in rates
    if probe["stopped_by"] == "plateau":
        assert rates[2 * chosen] < 1.1 * rates[chosen]
    else:
        assert probe["stopped_by"] == "limit"
        assert chosen == 32
    assert study.trials[0].user_attrs["batch_size"] == chosen

    def no_second_probe(*args):
        raise AssertionError("probed again")

    monkeypatch.setattr(setup, "find_batch_size", no_second_probe)
    resumed = run_study(dataclasses.replace(spec, trials=2), tmp_path / "run", progress=False)
    assert [t.user_attrs["batch_size"] for t in resumed.trials] == [chosen] * 2


def test_a_machine_that_finishes_its_probe_second_keeps_the_first_ones_batch(
    tmp_path, tiny_spec, monkeypatch
):
    spec = dataclasses.replace(
        tiny_spec, training=dataclasses.replace(tiny_spec.training, batch_size="auto")
    )
    study = prepare_study(spec, tmp_path, probe_batch_size=False)[0]

    def slower_than_another_machine(*args):
        study.set_user_attr("batch_size", 24)  # the other machine's probe ends while ours runs
        return BatchProbe(
            batch_size=16, images_per_second={8: 100.0, 16: 150.0}, stopped_by="plateau"
        )

    monkeypatch.setattr(setup, "find_batch_size", slower_than_another_machine)
    resolved = prepare_study(spec, tmp_path)[1]
    assert resolved.training.batch_size == 24
    assert study.user_attrs["batch_size"] == 24
