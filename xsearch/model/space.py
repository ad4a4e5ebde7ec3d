"""Search spaces over `XceptionConfig`: ranges and choices per axis, sampled by Optuna or KerasTuner.

The encoding is fixed-length and always valid: every axis is one parameter in every trial (a fixed
axis is a one-value choice), and every choice is valid at every width (see
`XceptionConfig.channels`). ``segments`` is encoded as strings (``"1"``, ``"4"``, ``"depthwise"``)
so that each parameter has values of a single type in both tuners.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from xsearch.common.resources import load_toml, resolve, unknown_keys_error
from xsearch.model.config import XceptionConfig

if TYPE_CHECKING:
    import keras_tuner

AXES = tuple(field.name for field in dataclasses.fields(XceptionConfig))
_NUMERIC = {"middle_repeats": int, "width": float, "depth_multiplier": int}


@dataclasses.dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (inclusive) in steps of ``step``."""

    low: float
    high: float
    step: float


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed list of values."""

    values: tuple[Any, ...]


Axis = Range | Choice


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """One `Range` or `Choice` per axis of `XceptionConfig`."""

    name: str
    axes: dict[str, Axis]
    description: str = ""

    def __post_init__(self) -> None:
        missing = [axis for axis in AXES if axis not in self.axes]
        if missing:
            raise ValueError(f"search space {self.name!r}: missing axes {', '.join(missing)}.")
        for axis in self.axes:
            if axis not in AXES:
                raise unknown_keys_error(f"search space {self.name!r}", axis, list(AXES))
        for value in self.corners():
            self._config(value, origin="corner")

    @classmethod
    def from_toml(cls, name_or_path: str | Path) -> SearchSpace:
        """Load a shipped space by name (``xception-small``) or a ``.toml`` file by path."""
        path = resolve("search_spaces", name_or_path)
        data = load_toml(path)
        for key in data:
            if key not in ("description", "axes"):
                raise unknown_keys_error(str(path), key, ["description", "axes"])
        axes_table = data.get("axes", {})
        if not isinstance(axes_table, dict):
            raise ValueError(f"{path}: [axes] must be a table of axis = range or choices.")
        axes = {axis: _parse_axis(path, axis, spec) for axis, spec in axes_table.items()}
        paper = XceptionConfig.paper().to_dict()
        for axis in AXES:
            axes.setdefault(axis, Choice((paper[axis],)))
        try:
            return cls(path.stem, axes, str(data.get("description", "")))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def default(cls) -> SearchSpace:
        return cls.from_toml("xception-full")

    def sample(self, trial: optuna.Trial) -> XceptionConfig:
        """Suggest one value per axis on an Optuna trial (define-by-run or ask/tell)."""
        values: dict[str, Any] = {}
        for axis, spec in self.axes.items():
            if isinstance(spec, Range) and _NUMERIC[axis] is int:
                values[axis] = trial.suggest_int(
                    axis, int(spec.low), int(spec.high), step=int(spec.step)
                )
            elif isinstance(spec, Range):
                values[axis] = trial.suggest_float(axis, spec.low, spec.high, step=spec.step)
            else:
                values[axis] = trial.suggest_categorical(axis, _encode_all(axis, spec.values))
        return self.decode(values)

    def sample_keras_tuner(self, hp: keras_tuner.HyperParameters) -> XceptionConfig:
        """Declare/read one hyperparameter per axis on KerasTuner ``hp`` (same names and values)."""
        values = {}
        for axis, spec in self.axes.items():
            if isinstance(spec, Range) and _NUMERIC[axis] is int:
                values[axis] = hp.Int(axis, int(spec.low), int(spec.high), step=int(spec.step))
            elif isinstance(spec, Range):
                values[axis] = hp.Float(axis, spec.low, spec.high, step=spec.step)
            else:
                values[axis] = hp.Choice(axis, _encode_all(axis, spec.values), ordered=False)
        return self.decode(values)

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the encoding, for ask/tell with fixed distributions."""
        result: dict[str, optuna.distributions.BaseDistribution] = {}
        for axis, spec in self.axes.items():
            if isinstance(spec, Range) and _NUMERIC[axis] is int:
                result[axis] = optuna.distributions.IntDistribution(
                    int(spec.low), int(spec.high), step=int(spec.step)
                )
            elif isinstance(spec, Range):
                result[axis] = optuna.distributions.FloatDistribution(
                    spec.low, spec.high, step=spec.step
                )
            else:
                result[axis] = optuna.distributions.CategoricalDistribution(
                    _encode_all(axis, spec.values)
                )
        return result

    def encode(self, config: XceptionConfig) -> dict[str, Any]:
        """Parameter values of ``config`` in this space's encoding (e.g. to enqueue it)."""
        values = config.to_dict()
        return {axis: _encode(axis, values[axis]) for axis in AXES}

    def decode(self, values: dict[str, Any]) -> XceptionConfig:
        return self._config(values, origin="sampled")

    def contains(self, config: XceptionConfig) -> bool:
        """True when every axis value of ``config`` lies in this space."""
        values = config.to_dict()
        for axis, spec in self.axes.items():
            value = values[axis]
            if isinstance(spec, Choice) and value not in spec.values:
                return False
            if isinstance(spec, Range):
                steps = (value - spec.low) / spec.step
                if not (spec.low <= value <= spec.high) or abs(steps - round(steps)) > 1e-9:
                    return False
        return True

    def corners(self) -> list[dict[str, Any]]:
        """Each axis' extreme values (with the others at their first value), for validation."""
        base = {axis: _first(spec) for axis, spec in self.axes.items()}
        points = [dict(base)]
        for axis, spec in self.axes.items():
            for value in _extremes(spec):
                points.append({**base, axis: value})
        return points

    def _config(self, values: dict[str, Any], origin: str) -> XceptionConfig:
        decoded = {axis: _decode(axis, value) for axis, value in values.items()}
        if isinstance(decoded.get("width"), float):
            decoded["width"] = round(decoded["width"], 6)
        try:
            return XceptionConfig(**decoded)
        except ValueError as error:
            raise ValueError(
                f"search space {self.name!r} ({origin} values {values}): {error}"
            ) from None


def _parse_axis(path: Path, axis: str, spec: Any) -> Axis:
    if axis not in AXES:
        raise unknown_keys_error(f"{path} [axes]", axis, list(AXES))
    where = f"{path}: axes.{axis}"
    if isinstance(spec, dict):
        if axis not in _NUMERIC:
            raise ValueError(
                f"{where}: a range is only valid for {', '.join(_NUMERIC)}; give a list of choices."
            )
        for key in spec:
            if key not in ("low", "high", "step"):
                raise unknown_keys_error(where, key, ["low", "high", "step"])
        if "low" not in spec or "high" not in spec:
            raise ValueError(f"{where}: a range needs 'low' and 'high'; received {spec}.")
        kind = _NUMERIC[axis]
        step = spec.get("step", 1 if kind is int else None)
        if step is None:
            raise ValueError(
                f"{where}: a width range needs a 'step' (e.g. 0.125) to stay fixed-length."
            )
        low, high = spec["low"], spec["high"]
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, step)
        ):
            raise ValueError(f"{where}: low, high and step must be numbers; received {spec}.")
        if kind is int and not all(isinstance(v, int) for v in (low, high, step)):
            raise ValueError(f"{where}: low, high and step must be integers; received {spec}.")
        if step <= 0 or low > high:
            raise ValueError(f"{where}: needs low <= high and step > 0; received {spec}.")
        return Range(low, high, step)
    values = tuple(spec) if isinstance(spec, list) else (spec,)
    if not values:
        raise ValueError(f"{where}: the list of choices is empty; give at least one value.")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"{where}: repeated choices in {list(values)}.")
    return Choice(values)


def _encode(axis: str, value: Any) -> Any:
    return str(value) if axis == "segments" else value


def _encode_all(axis: str, values: tuple[Any, ...]) -> list[Any]:
    return [_encode(axis, value) for value in values]


def _decode(axis: str, value: Any) -> Any:
    if axis == "segments" and isinstance(value, str) and value.isdigit():
        return int(value)
    if (
        axis in ("middle_repeats", "depth_multiplier")
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    if axis == "residual" and not isinstance(value, bool) and value in (0, 1):
        return bool(value)  # KerasTuner hands boolean choices back as 0/1
    return value


def _first(spec: Axis) -> Any:
    return spec.low if isinstance(spec, Range) else spec.values[0]


def _extremes(spec: Axis) -> tuple[Any, ...]:
    return (spec.low, spec.high) if isinstance(spec, Range) else spec.values
