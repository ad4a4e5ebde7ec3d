"""One point of the Xception design space: `XceptionConfig`, and its channel-rounding rule."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Literal

Segments = int | Literal["depthwise"]
ACTIVATIONS = ("none", "relu", "elu")
MIN_INPUT_SIZE = 7
"""Smallest image side the stem accepts: two unpadded 3x3 convs (the first with stride 2)."""


@dataclasses.dataclass(frozen=True)
class XceptionConfig:
    """An Xception variant on the paper's six axes.

    - ``middle_repeats``: number of middle-flow modules (paper: 8), an integer >= 0.
    - ``width``: multiplier on every channel count, a float in (0, 4].
    - ``depth_multiplier``: output channels of each spatial conv per input channel, an integer >= 1.
    - ``segments``: channel groups in the spatial conv of every separable conv: an integer k >= 1
      (1 = regular 3x3 conv, k = grouped conv) or ``"depthwise"`` (one group per channel).
    - ``intermediate_activation``: ``"none"``, ``"relu"`` or ``"elu"`` between spatial and pointwise conv.
    - ``residual``: residual connections around the modules on (``True``) or off.
    """

    middle_repeats: int = 8
    width: float = 1.0
    depth_multiplier: int = 1
    segments: Segments = "depthwise"
    intermediate_activation: str = "none"
    residual: bool = True

    def __post_init__(self) -> None:
        _check_int("middle_repeats", self.middle_repeats, minimum=0)
        _check_int("depth_multiplier", self.depth_multiplier, minimum=1)
        if (
            isinstance(self.width, bool)
            or not isinstance(self.width, (int, float))
            or not (0 < float(self.width) <= 4)
        ):
            raise ValueError(
                f"XceptionConfig.width must be a number in (0, 4]; received width={self.width!r}."
            )
        object.__setattr__(self, "width", float(self.width))
        if self.segments != "depthwise":
            _check_int("segments", self.segments, minimum=1, extra=' or "depthwise"')
        if self.intermediate_activation not in ACTIVATIONS:
            raise ValueError(
                "XceptionConfig.intermediate_activation must be one of "
                f"{', '.join(repr(a) for a in ACTIVATIONS)}; "
                f"received intermediate_activation={self.intermediate_activation!r}."
            )
        if not isinstance(self.residual, bool):
            raise ValueError(
                f"XceptionConfig.residual must be true or false; received residual={self.residual!r}."
            )

    @classmethod
    def paper(cls) -> XceptionConfig:
        """The configuration of the Xception paper (and of `keras.applications.Xception`)."""
        return cls()

    def channels(self, base: int) -> int:
        """Channel count of a layer whose paper width is ``base``, under this config.

        Rule: ``base`` is kept exactly when ``width == 1`` and ``base`` is divisible by the segment
        count (so the paper point keeps 728). Otherwise it becomes the multiple of
        ``q = lcm(8, segments)`` (``q = 8`` for depthwise) nearest to ``base * width``, and at least
        ``q``. Every grouped conv is then valid, and scaled layers are multiples of 8.
        """
        groups = 1 if self.segments == "depthwise" else int(self.segments)
        if self.width == 1.0 and base % groups == 0:
            return base
        quantum = math.lcm(8, groups)
        return max(quantum, round(base * self.width / quantum) * quantum)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> XceptionConfig:
        """Build a config from a mapping, refusing unknown keys (``source`` names it in errors)."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(fields)}."
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> XceptionConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON ({error}).") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, received {type(data).__name__}.")
        return cls.from_dict(data, source)


def _check_int(name: str, value: Any, minimum: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"XceptionConfig.{name} must be an integer >= {minimum}{extra}; "
            f"received {name}={value!r}."
        )
