"""Models saved by earlier keras_subp code still load, train and strip to the same weights.

The fixtures in tests/fixtures/keras_subp_legacy/ were written by `make_fixtures.py` there, with
the code of the commit named in its README; `expected.npz` holds what that code computed.
"""

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_subp

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "keras_subp_legacy"


@pytest.fixture(scope="module")
def expected():
    with np.load(LEGACY / "expected.npz") as arrays:
        return dict(arrays)


def stored(expected: dict, prefix: str) -> list[np.ndarray]:
    count = sum(1 for key in expected if key.startswith(prefix))
    assert count > 0, prefix
    return [expected[f"{prefix}{index}"] for index in range(count)]


def assert_same_weights(actual: list[np.ndarray], reference: list[np.ndarray], exact: bool):
    assert len(actual) == len(reference)
    for index, (got, want) in enumerate(zip(actual, reference, strict=True)):
        assert got.shape == want.shape, index
        # Pruned weights are exact zeros in both, so the sparsity pattern must match exactly.
        np.testing.assert_array_equal(got == 0, want == 0, err_msg=f"weight {index}")
        if exact:
            np.testing.assert_array_equal(got, want, err_msg=f"weight {index}")
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"weight {index}")


def load(name: str) -> keras.Model:
    return keras.models.load_model(LEGACY / name, compile=False)


def quiet_strip(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the schedule is not over on purpose
        return keras_subp.strip_subp(model)


def test_legacy_subp_model_loads_with_its_state(expected):
    model = load("subp_model.keras")
    wrappers = keras_subp.subp_wrappers(model)
    assert [w.name for w in wrappers] == ["subp_conv1", "subp_conv2"]
    for wrapper in wrappers:
        assert isinstance(wrapper, keras_subp.BlockMaskWrapper)
        assert (wrapper.n, wrapper.sparsity, wrapper.criterion) == (4, 0.5, "l1")
        assert wrapper.schedule == keras_subp.schedules.Linear(0, 3)
        assert int(wrapper.schedule_epoch.numpy()) == 1  # two updates: epochs 0 and 1
        assert wrapper.rng_state.numpy()[1] == 2
        # Linear(0, 3) at epoch 1: r = 1/3, R = int((0.5 - 0.5/3) * 8) = 2, so 4 - 2 = 2 pruned.
        np.testing.assert_array_equal((wrapper.block_mask() == 0).sum(axis=1), [2, 2])
    assert_same_weights(
        quiet_strip(model).get_weights(), stored(expected, "subp_stripped_"), exact=True
    )


def test_legacy_subp_model_trains_one_step_and_strips_identically(expected):
    model = load("subp_model.keras")
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = expected["images"], expected["labels"]
    callback = keras_subp.UpdateSUBP()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(
            images,
            labels,
            batch_size=len(images),
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[callback],
        )
    epochs = [int(w.schedule_epoch.numpy()) for w in keras_subp.subp_wrappers(model)]
    np.testing.assert_array_equal(epochs, expected["subp_schedule_epochs_after_step"])
    assert epochs == [2, 2]
    # Linear(0, 3) at epoch 2: r = 2/3, R = int((0.5 - 1/3) * 8) = 1 regrown, 3 pruned per group.
    assert [u.pruned_blocks_per_group for u in callback.last_updates] == [3, 3]
    assert_same_weights(
        quiet_strip(model).get_weights(), stored(expected, "subp_after_step_"), exact=False
    )


def test_legacy_one_by_n_model_loads_and_strips_identically(expected):
    model = load("one_by_n_model.keras")
    wrappers = [layer for layer in model.layers if isinstance(layer, keras_subp.BlockMaskWrapper)]
    assert [type(w).__name__ for w in wrappers] == ["FixedBlockMaskWrapper"] * 2
    assert all(isinstance(w, keras_subp.FixedBlockMaskWrapper) for w in wrappers)
    # Layer-global L1 pruning of int(2 * 8 * 0.5) = 8 of the 16 blocks of each layer.
    for wrapper in wrappers:
        assert (wrapper.n, wrapper.sparsity) == (4, 0.5)
        assert int((wrapper.block_mask() == 0).sum()) == 8
    assert_same_weights(
        keras_subp.strip_subp(model).get_weights(), stored(expected, "one_by_n_stripped_"), True
    )
