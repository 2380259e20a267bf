"""Schedules r(e): values at chosen epochs, edge cases and serialization."""

import keras
import pytest

from keras_subp import schedules


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # Cubic(2, 6): t = (e - 2) / 4, r = t**3.
        (
            schedules.Cubic(2, 6),
            {0: 0.0, 2: 0.0, 3: 0.015625, 4: 0.125, 5: 0.421875, 6: 1.0, 9: 1.0},
        ),
        (schedules.Linear(2, 6), {1: 0.0, 2: 0.0, 3: 0.25, 5: 0.75, 6: 1.0}),
        # Cosine(0, 4): 1 - cos(e * pi / 8).
        (
            schedules.Cosine(0, 4),
            {0: 0.0, 1: 0.07612046748871326, 2: 0.2928932188134524, 3: 0.6173165676349102, 4: 1.0},
        ),
        # Exponential(0, 5): (1 - exp(-0.05 e)) / (1 - exp(-0.05 * 4)); reaches 1 at e = 4.
        (
            schedules.Exponential(0, 5),
            {0: 0.0, 1: 0.2690504668, 2: 0.5249791875, 3: 0.7684261172, 4: 1.0, 5: 1.0},
        ),
        (schedules.Constant(3), {0: 0.0, 2: 0.0, 3: 1.0, 10: 1.0}),
        # s == E: a step; s == E == 0: full target from the first epoch.
        (schedules.Cubic(3, 3), {2: 0.0, 3: 1.0}),
        (schedules.Linear(0, 0), {0: 1.0, 1: 1.0}),
        (schedules.Exponential(4, 4), {3: 0.0, 4: 1.0}),
    ],
)
def test_values_at_chosen_epochs(schedule, expected):
    for epoch, value in expected.items():
        assert schedule(epoch) == pytest.approx(value, abs=1e-8), (schedule, epoch)


def test_cubic_is_t_cubed_not_zhu_gupta():
    # Zhu-Gupta / tfmot PolynomialDecay(power=3) would give 1 - (1 - 0.25)**3 = 0.578125.
    assert schedules.Cubic(0, 4)(1) == pytest.approx(0.25**3)


def test_invalid_schedules_raise():
    with pytest.raises(ValueError, match="must not be before start_epoch"):
        schedules.Linear(5, 2)
    with pytest.raises(ValueError, match="start_epoch must be a non-negative integer"):
        schedules.Cubic(-1, 2)
    with pytest.raises(ValueError, match="end_epoch - start_epoch >= 2"):
        schedules.Exponential(2, 3)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        schedules.Cubic(0, 2)(-1)
    with pytest.raises(ValueError, match="schedule must be"):
        schedules.get("cubic")


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.Cubic(1, 7),
        schedules.Linear(0, 3),
        schedules.Cosine(2, 9),
        schedules.Exponential(0, 6, rate=0.1),
        schedules.Constant(4),
    ],
)
def test_serialization_round_trip(schedule):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored == schedule
    assert [restored(e) for e in range(10)] == [schedule(e) for e in range(10)]


def test_default_schedule():
    assert schedules.get(None) == schedules.Cubic(0, 10)
