"""Benchmark of keras_subp training costs.

(a) Training step time of a SUBP-wrapped model over the same dense model (target <= 1.3x):
    both compiled identically, timed in interleaved repeats of `--steps` train_on_batch calls
    each; the table gives the median per-step time of each variant and the ratio of medians.
(b) Time of one mask update (all layers, `keras_subp.update_masks`) for ResNet-50
    (`cnn_zoo.models.resnet50`: keras.applications, weights=None, 224x224x3, logits) at n=16
    (target <= 5 s), median of repeats; every timed update is inside the schedule's ramp, so
    regrowth sampling runs too.

Run: python -m scripts.benchmark_subp_training [--model resnet_small --batch_size 128 ...]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "model", "resnet_small", ["resnet_small", "vgg_small", "mobilenet_v1_small"], "28x28 model."
)
flags.DEFINE_integer("batch_size", 128, "Batch size of the training-step benchmark.")
flags.DEFINE_integer("steps", 20, "Training steps per timed repeat.")
flags.DEFINE_integer("repeats", 7, "Interleaved repeats per variant (training steps).")
flags.DEFINE_integer("warmup_steps", 5, "Untimed steps per variant before timing.")
flags.DEFINE_integer("n", 16, "Block length N.")
flags.DEFINE_float("sparsity", 0.5, "Target block sparsity p.")
flags.DEFINE_enum("criterion", "bpar", ["l1", "l2", "bpar"], "Block importance criterion.")
flags.DEFINE_integer("update_repeats", 5, "Timed ResNet-50 mask updates (after one warm-up).")
flags.DEFINE_integer("seed", 0, "Seed for models and data.")
flags.DEFINE_bool("skip_resnet50", False, "Skip part (b).")


def _build_small_model(seed: int):
    from cnn_zoo import models

    return getattr(models, FLAGS.model)(input_shape=(28, 28, 1), num_classes=10, seed=seed)


def _compile(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _time_steps(model, images, labels, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return (time.perf_counter() - start) / steps


def benchmark_training_step() -> dict:
    import numpy as np

    import keras_subp

    rng = np.random.default_rng(FLAGS.seed)
    images = rng.random((FLAGS.batch_size, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, size=FLAGS.batch_size)
    dense = _compile(_build_small_model(FLAGS.seed))
    wrapped = keras_subp.prune_subp(
        _build_small_model(FLAGS.seed),
        n=FLAGS.n,
        sparsity=FLAGS.sparsity,
        schedule=keras_subp.schedules.Constant(0),
        criterion=FLAGS.criterion,
        seed=FLAGS.seed,
    )
    _compile(wrapped)
    keras_subp.update_masks(wrapped)  # what UpdateSUBP does at the start of an epoch
    variants = {"dense": dense, "subp": wrapped}
    for model in variants.values():
        _time_steps(model, images, labels, FLAGS.warmup_steps)
    samples = {name: [] for name in variants}
    for _ in range(FLAGS.repeats):
        for name, model in variants.items():  # interleaved, so load drifts hit both
            samples[name].append(_time_steps(model, images, labels, FLAGS.steps))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "wrapped_layers": len(keras_subp.subp_wrappers(wrapped)),
        "dense_ms": medians["dense"] * 1e3,
        "subp_ms": medians["subp"] * 1e3,
        "ratio": medians["subp"] / medians["dense"],
        "dense_all_ms": [v * 1e3 for v in samples["dense"]],
        "subp_all_ms": [v * 1e3 for v in samples["subp"]],
    }


def benchmark_resnet50_update() -> dict:
    import keras_subp
    from cnn_zoo import models

    # The classifier's activation does not touch the convolutions whose masks are timed; logits
    # keep this model the same as the other benchmarks build.
    dense = models.resnet50(seed=FLAGS.seed, classifier_activation=None)
    model = keras_subp.prune_subp(
        dense,
        n=16,
        sparsity=FLAGS.sparsity,
        schedule=keras_subp.schedules.Linear(0, FLAGS.update_repeats + 10),
        criterion=FLAGS.criterion,
        seed=FLAGS.seed,
    )
    start = time.perf_counter()
    keras_subp.update_masks(model)  # warm-up (first op dispatches)
    first = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.update_repeats):
        start = time.perf_counter()
        updates = keras_subp.update_masks(model)
        times.append(time.perf_counter() - start)
    return {
        "wrapped_layers": len(updates),
        "first_s": first,
        "median_s": statistics.median(times),
        "all_s": times,
        "regrown_in_last": sum(u.regrown_blocks_per_group * u.groups for u in updates),
    }


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    command = "python -m scripts.benchmark_subp_training " + " ".join(sys.argv[1:])
    print(f"command: {command.strip()}")
    print(
        f"keras {keras.__version__}, tensorflow {tf.__version__}, backend "
        f"{keras.backend.backend()}, CPUs visible: {os.cpu_count()}"
    )
    step = benchmark_training_step()
    print()
    print(
        f"(a) training step, {FLAGS.model}, batch {FLAGS.batch_size}, n={FLAGS.n}, "
        f"p={FLAGS.sparsity}, {step['wrapped_layers']} wrapped layers; median of "
        f"{FLAGS.repeats} interleaved repeats x {FLAGS.steps} steps"
    )
    print(f"{'variant':<10} {'ms/step (median)':>17}   all repeats (ms/step)")
    print(
        f"{'dense':<10} {step['dense_ms']:>17.2f}   "
        + ", ".join(f"{v:.2f}" for v in step["dense_all_ms"])
    )
    print(
        f"{'subp':<10} {step['subp_ms']:>17.2f}   "
        + ", ".join(f"{v:.2f}" for v in step["subp_all_ms"])
    )
    print(f"ratio subp/dense: {step['ratio']:.3f}  (target <= 1.3)")
    if not FLAGS.skip_resnet50:
        update = benchmark_resnet50_update()
        print()
        print(
            f"(b) one mask update of ResNet-50 (cnn_zoo / keras.applications, 224x224x3), n=16, "
            f"p={FLAGS.sparsity}, criterion={FLAGS.criterion}, {update['wrapped_layers']} wrapped layers"
        )
        print(f"first (warm-up) update: {update['first_s']:.3f} s")
        print(
            f"median of {FLAGS.update_repeats}: {update['median_s']:.3f} s  (target <= 5 s); all: "
            + ", ".join(f"{v:.3f}" for v in update["all_s"])
        )


if __name__ == "__main__":
    app.run(main)
