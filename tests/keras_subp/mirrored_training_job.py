"""Subprocess job: SUBP training under MirroredStrategy on two logical CPU devices.

Run as `python -m tests.keras_subp.mirrored_training_job OUTPUT.npz`. Logical devices must be
configured before TensorFlow initialises its devices, so this runs in a fresh process; it
writes each wrapper's mask as seen by every replica, plus the replica device names.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(output_path: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras

    import keras_subp

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    images = rng.random((64, 8, 8, 3), dtype=np.float32)
    labels = rng.integers(0, 4, size=64)
    with strategy.scope():
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
        x = keras.layers.Conv2D(8, 1, name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(4)(x))
        pruned = keras_subp.prune_subp(
            model, n=4, sparsity=0.5, schedule=keras_subp.schedules.Linear(0, 2), seed=3
        )
        pruned.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    pruned.fit(
        images, labels, batch_size=16, epochs=3, verbose=0, callbacks=[keras_subp.UpdateSUBP()]
    )
    arrays = {"num_replicas": np.array(strategy.num_replicas_in_sync)}
    for wrapper in keras_subp.subp_wrappers(pruned):
        # The Keras variable's value is a tf.distribute MirroredVariable: one copy per replica.
        replicas = wrapper.mask.value.values
        arrays[f"{wrapper.name}/mask"] = np.stack([np.asarray(v.numpy()) for v in replicas])
        arrays[f"{wrapper.name}/devices"] = np.array([v.device for v in replicas])
        kernels = wrapper.layer.kernel.value.values
        arrays[f"{wrapper.name}/kernel"] = np.stack([np.asarray(v.numpy()) for v in kernels])
        arrays[f"{wrapper.name}/schedule_epoch"] = np.array(int(wrapper.schedule_epoch.numpy()))
    np.savez(output_path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
