"""Saving as .keras, reloading without custom_objects, and resuming with identical masks."""

import keras
import numpy as np

import keras_subp
from keras_subp import schedules

from .subp_test_models import compile_for_classification, random_classification_data, small_bn_cnn

EPOCHS_BEFORE_SAVE = 2
TOTAL_EPOCHS = 5


class RecordMasks(keras.callbacks.Callback):
    """Records every wrapper's block mask right after UpdateSUBP changed it."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def on_epoch_begin(self, epoch, logs=None):
        self.masks.append({w.name: w.block_mask() for w in keras_subp.subp_wrappers(self.model)})


def make_model():
    model = keras_subp.prune_subp(
        small_bn_cnn(seed=3),
        n=4,
        sparsity=0.5,
        schedule=schedules.Linear(0, 4),
        criterion="bpar",
        seed=21,
    )
    return compile_for_classification(model)


def fit(model, epochs, recorder):
    images, labels = random_classification_data(count=48, seed=1)
    model.fit(
        images,
        labels,
        batch_size=16,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[keras_subp.UpdateSUBP(), recorder],
    )


def test_save_load_resume_gives_the_same_masks_as_uninterrupted_training(tmp_path):
    uninterrupted = make_model()
    uninterrupted_record = RecordMasks()
    fit(uninterrupted, TOTAL_EPOCHS, uninterrupted_record)

    interrupted = make_model()
    first_record = RecordMasks()
    fit(interrupted, EPOCHS_BEFORE_SAVE, first_record)
    path = tmp_path / "subp.keras"
    interrupted.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects needed

    for before, after in zip(
        keras_subp.subp_wrappers(interrupted), keras_subp.subp_wrappers(reloaded), strict=True
    ):
        assert isinstance(after, keras_subp.SUBPWrapper)
        np.testing.assert_array_equal(after.mask.numpy(), before.mask.numpy())
        assert int(after.schedule_epoch.numpy()) == EPOCHS_BEFORE_SAVE - 1
        np.testing.assert_array_equal(after.rng_state.numpy(), before.rng_state.numpy())
        assert after.schedule == schedules.Linear(0, 4) and after.seed == before.seed

    resumed_record = RecordMasks()
    fit(reloaded, TOTAL_EPOCHS - EPOCHS_BEFORE_SAVE, resumed_record)  # no initial_epoch needed

    combined = first_record.masks + resumed_record.masks
    assert len(combined) == len(uninterrupted_record.masks) == TOTAL_EPOCHS
    for epoch, (expected, actual) in enumerate(
        zip(uninterrupted_record.masks, combined, strict=True)
    ):
        for name in expected:
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=f"epoch {epoch}")
    # The regrowth sampling really happened on the resumed side (masks changed after reload).
    name = next(iter(expected))
    assert not np.array_equal(resumed_record.masks[0][name], resumed_record.masks[1][name])
    for expected_weight, actual_weight in zip(
        uninterrupted.get_weights(), reloaded.get_weights(), strict=True
    ):
        np.testing.assert_allclose(actual_weight, expected_weight, rtol=1e-4, atol=1e-5)
