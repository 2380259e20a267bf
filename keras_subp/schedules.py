"""Pruning schedules r(e) of SUBP: the fraction of the target sparsity reached at epoch e.

At epoch e every sparse layer prunes p * r(e) of its blocks per group (more exactly,
P - R_e blocks with R_e = int((p - p * r(e)) * Cin)). r = 0 means dense training (every
candidate regrows), r = 1 means the full target. With s = `start_epoch`, E = `end_epoch` and
t = (e - s) / (E - s):

* `Cubic`: clamp(t**3, 0, 1), exactly SUBP's "cubic". It rises slowly at first. This is NOT the
  Zhu-Gupta / tfmot `PolynomialDecay(power=3)` ramp 1 - (1 - t)**3, which rises fast at first.
* `Linear`: clamp(t, 0, 1).
* `Cosine`: 1 - cos(t * pi / 2) for s <= e < E.
* `Exponential`: sch_{e-s} / sch_{E-s-1} for s <= e < E with sch_k = 1 - exp(-rate * k).
* `Constant`: 0 before `start_epoch`, 1 from it on (tfmot's `ConstantSparsity`).

All schedules give 0 before s and 1 from E on. Edge cases the SUBP authors' code divides by zero
on are defined here: s == E is a step (0 before s, 1 from s on; s == E == 0 prunes to the full
target from the first epoch), and `Exponential` rejects E - s == 1 (its formula is 0/0 there).
"""

from __future__ import annotations

import math

import keras


def _check_epoch(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    return value


class Schedule:
    """Base class: `schedule(epoch)` returns r(epoch) in [0, 1] as a Python float."""

    def __init__(self, start_epoch: int = 0, end_epoch: int = 0):
        self.start_epoch = _check_epoch("start_epoch", start_epoch)
        self.end_epoch = _check_epoch("end_epoch", end_epoch)
        if self.end_epoch < self.start_epoch:
            raise ValueError(
                f"end_epoch ({end_epoch}) must not be before start_epoch ({start_epoch})."
            )

    def __call__(self, epoch: int) -> float:
        epoch = _check_epoch("epoch", epoch)
        if epoch < self.start_epoch:
            return 0.0
        if epoch >= self.end_epoch:
            return 1.0
        progress = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        return float(min(max(self._ramp(progress, epoch), 0.0), 1.0))

    def _ramp(self, progress: float, epoch: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"start_epoch": self.start_epoch, "end_epoch": self.end_epoch}

    @classmethod
    def from_config(cls, config: dict) -> Schedule:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package="keras_subp")
class Cubic(Schedule):
    """r = t**3 (SUBP's default "cubic"; not Zhu-Gupta's 1 - (1 - t)**3)."""

    def _ramp(self, progress: float, epoch: int) -> float:
        return progress**3


@keras.saving.register_keras_serializable(package="keras_subp")
class Linear(Schedule):
    """r = t."""

    def _ramp(self, progress: float, epoch: int) -> float:
        return progress


@keras.saving.register_keras_serializable(package="keras_subp")
class Cosine(Schedule):
    """r = 1 - cos(t * pi / 2)."""

    def _ramp(self, progress: float, epoch: int) -> float:
        return 1.0 - math.cos(progress * math.pi / 2.0)


@keras.saving.register_keras_serializable(package="keras_subp")
class Exponential(Schedule):
    """r = (1 - exp(-rate * (e - s))) / (1 - exp(-rate * (E - s - 1))); reaches 1 at e = E - 1."""

    def __init__(self, start_epoch: int = 0, end_epoch: int = 0, rate: float = 0.05):
        super().__init__(start_epoch, end_epoch)
        if self.end_epoch - self.start_epoch == 1:
            raise ValueError(
                "Exponential needs end_epoch - start_epoch >= 2 (or 0 for a step); "
                f"got start_epoch={start_epoch}, end_epoch={end_epoch}."
            )
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
            raise ValueError(f"rate must be a positive finite number, got {rate!r}.")
        self.rate = float(rate)

    def _ramp(self, progress: float, epoch: int) -> float:
        last = self.end_epoch - self.start_epoch - 1
        return (1.0 - math.exp(-self.rate * (epoch - self.start_epoch))) / (
            1.0 - math.exp(-self.rate * last)
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="keras_subp")
class Constant(Schedule):
    """r = 0 before `start_epoch`, 1 from it on (`end_epoch` always equals `start_epoch`)."""

    def __init__(self, start_epoch: int = 0):
        super().__init__(start_epoch, start_epoch)

    def _ramp(self, progress: float, epoch: int) -> float:  # pragma: no cover - never a ramp
        return 1.0

    def get_config(self) -> dict:
        return {"start_epoch": self.start_epoch}


def default_schedule() -> Schedule:
    """The schedule `prune_subp` uses when none is given: `Cubic(start_epoch=0, end_epoch=10)`."""
    return Cubic(start_epoch=0, end_epoch=10)


def get(identifier) -> Schedule:
    """Return a `Schedule` from an instance, None (the default) or a serialized config dict."""
    if identifier is None:
        return default_schedule()
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, dict):
        schedule = keras.saving.deserialize_keras_object(identifier)
        if isinstance(schedule, Schedule):
            return schedule
    raise ValueError(
        "schedule must be a keras_subp.schedules.Schedule (Cubic, Linear, Cosine, Exponential, "
        f"Constant) or None, got {identifier!r}."
    )
