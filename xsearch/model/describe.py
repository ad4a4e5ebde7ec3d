"""A text description of one config: its architecture summary and costs."""

from __future__ import annotations

import io

from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device_latency import measure_latency
from xsearch.model.step_time import measure_step_time


def describe(
    config: XceptionConfig,
    image_size: int = 299,
    num_classes: int = 1000,
    summary: bool = True,
    latency_batch: int | None = None,
    step_batch: int | None = None,
) -> str:
    """Keras summary (optional), params, MACs and FLOPs; measured latency and training-step time (beside the
    design's depthwise twin) when their batch sizes are given."""
    checked = (
        ("image size", image_size),
        ("classes", num_classes),
        ("latency batch", 1 if latency_batch is None else latency_batch),
        ("step batch", 1 if step_batch is None else step_batch),
    )
    for name, value in checked:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"--{name.replace(' ', '-')} must be an integer >= 1; received {value!r}."
            )
    model = build_model(config, (image_size, image_size, 3), num_classes)
    out = io.StringIO()
    if summary:
        model.summary(print_fn=lambda line, **_: out.write(line + "\n"), line_length=110)
    costs = model_costs(model)
    out.write(f"config: {config.to_json()}\n")
    out.write(f"input: {image_size}x{image_size}x3, classes: {num_classes}\n")
    out.write(f"params: {costs['params']:,}\n")
    out.write(f"MACs: {costs['macs']:,} ({costs['macs'] / 1e9:.3f} G)\n")
    out.write(f"FLOPs: {costs['flops']:,} ({costs['flops'] / 1e9:.3f} G)\n")
    if latency_batch is not None:
        result = measure_latency(model, batch_size=latency_batch)
        out.write(
            f"latency: {result['latency_ms']:.2f} ms median (p90 {result['latency_p90_ms']:.2f} ms, cv "
            f"{result['latency_cv']:.0%}; the call path alone {result['overhead_ms']:.2f} ms) "
            f"at batch {result['batch_size']} on {result['device']}, backend {result['backend']}, "
            f"precision {result['precision']}\n"
        )
    if step_batch is not None:
        out.write(_step_time_line(config, image_size, num_classes, step_batch))
    return out.getvalue()


def _step_time_line(
    config: XceptionConfig, image_size: int, num_classes: int, batch_size: int
) -> str:
    step = measure_step_time(config, image_size, num_classes, batch_size)
    line = (
        f"training step: {step['step_ms']:.1f} ms median at batch {batch_size} on {step['device']}"
    )
    if config.segments == "depthwise":
        return line + "\n"
    ratio = step["step_ms"] / step["depthwise_step_ms"]
    return (
        f'{line}; its depthwise twin (segments = "depthwise") {step["depthwise_step_ms"]:.1f} ms: '
        f"this design trains {ratio:.1f}x as long a step\n"
    )
