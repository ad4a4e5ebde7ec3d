"""`describe`: the text `xsearch describe` prints for one config, on a tiny model."""

from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.describe import describe


def test_describe_gives_summary_costs_and_latency_only_when_asked():
    config = XceptionConfig(middle_repeats=0, width=0.125, segments=4)
    costs = model_costs(build_model(config, (16, 16, 3), 3))
    text = describe(config, image_size=16, num_classes=3, summary=False)
    assert text.splitlines() == [
        f"config: {config.to_json()}",
        "input: 16x16x3, classes: 3",
        f"params: {costs['params']:,}",
        f"MACs: {costs['macs']:,} ({costs['macs'] / 1e9:.3f} G)",
        f"FLOPs: {costs['flops']:,} ({costs['flops'] / 1e9:.3f} G)",
    ]
    full = describe(config, image_size=16, num_classes=3, latency_batch=2)
    assert "block2_sepconv1_spatial" in full
    assert full.index("block2_sepconv1_spatial") < full.index("config:")
    assert "ms median (p90" in full.splitlines()[-1]
    assert "at batch 2 on cpu" in full.splitlines()[-1]
    assert "; the call path alone " in full.splitlines()[-1]
