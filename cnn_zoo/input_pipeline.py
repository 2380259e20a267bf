"""tf.data input pipelines for the training scripts: epoch-indexed, seeded and resumable.

Datasets (`DATASETS`): Fashion-MNIST and MNIST come from the offline IDX loaders of
`cnn_zoo.datasets` (28x28x1, no augmentation); CIFAR-10, Imagenette and ImageNet (ILSVRC 2012)
come from a prepared tensorflow-datasets directory (`tfds.load(data_dir=...)`, never downloaded).

Augmentation, as in the SUBP reference training code:

* ImageNet and Imagenette, training: random resized crop (area 8 %-100 % of the image, aspect
  ratio 3/4-4/3, resized to `image_size`, bilinear), random horizontal flip, scaling to [0, 1],
  for ImageNet also AlexNet-style PCA colour ("lighting") noise with standard deviation 0.1, then
  per-channel normalisation with the ImageNet mean and standard deviation.
* ImageNet and Imagenette, evaluation: the shorter side resized to 256/224 x `image_size`
  (256 at 224), a centred `image_size` square crop, the same normalisation.
* CIFAR-10, training: 4-pixel zero padding, random 32x32 crop, random flip; scaling to [0, 1].

Reproducible and resumable: the training stream of epoch e is a shuffle seeded by (seed, e)
and every random crop, flip or colour draw is a stateless op seeded by (seed, e, position in
the epoch). A run restarted at epoch e therefore sees exactly the batches the uninterrupted
run saw, and every worker of a multi-worker job builds the same stream (the strategy then
shards it by data). Labels come out one-hot (float32), the format label smoothing needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# AlexNet PCA lighting: eigenvalues and eigenvectors (rows) of the ImageNet RGB covariance.
LIGHTING_EIGENVALUES = (0.2175, 0.0188, 0.0045)
LIGHTING_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# Evaluation resizes the shorter side to this multiple of the crop (256 / 224 as in the reference).
EVAL_RESIZE_RATIO = 256 / 224

Preprocess = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one dataset and which augmentation it gets.

    `kind` is "idx" (offline IDX loader), "cifar" or "imagenet" (augmentation family);
    `tfds_name` and the split names apply to TFDS datasets.
    """

    name: str
    kind: str
    num_classes: int
    tfds_name: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    idx_name: str | None = None  # name understood by cnn_zoo.datasets.load_dataset
    lighting_std: float = 0.0


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec("fashion_mnist", "idx", 10, idx_name="fashion-mnist"),
    "mnist": DatasetSpec("mnist", "idx", 10, idx_name="mnist"),
    "cifar10": DatasetSpec("cifar10", "cifar", 10, tfds_name="cifar10"),
    "imagenette": DatasetSpec(
        "imagenette", "imagenet", 10, tfds_name="imagenette", eval_split="validation"
    ),
    "imagenet2012": DatasetSpec(
        "imagenet2012",
        "imagenet",
        1000,
        tfds_name="imagenet2012",
        eval_split="validation",
        lighting_std=0.1,
    ),
}


@dataclass
class InputData:
    """A dataset ready for training: per-split base datasets of (uint8 image, int label).

    `train_examples`/`eval_examples` are None when the TFDS metadata does not give the split
    sizes (then the caller must say how many steps to train).
    """

    spec: DatasetSpec
    source: str
    input_shape: tuple[int, int, int]
    train_base: tf.data.Dataset
    eval_base: tf.data.Dataset
    train_examples: int | None
    eval_examples: int | None
    image_size: int

    def train_preprocess(self) -> Preprocess:
        """The training transform (image uint8, label, seed[2]) -> (float32 image, one-hot)."""
        if self.spec.kind == "imagenet":
            return imagenet_train_preprocess(
                self.image_size, self.spec.num_classes, self.spec.lighting_std
            )
        if self.spec.kind == "cifar":
            return cifar_train_preprocess(self.spec.num_classes)
        return plain_preprocess(self.spec.num_classes)

    def eval_preprocess(self) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        """The evaluation transform (image uint8, label) -> (float32 image, one-hot)."""
        if self.spec.kind == "imagenet":
            return imagenet_eval_preprocess(self.image_size, self.spec.num_classes)
        transform = plain_preprocess(self.spec.num_classes)
        return lambda image, label: transform(image, label, None)

    def train_dataset(
        self, batch_size: int, steps_per_epoch: int, first_epoch: int, epochs: int, seed: int
    ) -> tf.data.Dataset:
        """Batches of epochs first_epoch..epochs-1, exactly `steps_per_epoch` per epoch."""
        shuffle_buffer = min(self.train_examples or 10_000, 10_000)
        return epoch_stream(
            self.train_base,
            self.train_preprocess(),
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
            first_epoch=first_epoch,
            epochs=epochs,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
        )

    def eval_dataset(self, batch_size: int, steps: int | None = None) -> tf.data.Dataset:
        """The evaluation split, preprocessed and batched (last batch partial); `steps` caps it."""
        dataset = self.eval_base.map(self.eval_preprocess(), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size)
        if steps:
            dataset = dataset.take(steps)
        return with_data_sharding(dataset.prefetch(tf.data.AUTOTUNE))


def with_data_sharding(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Tell tf.distribute to shard by element: every worker builds the same seeded stream."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of `epoch` for run seed `seed` (a Python int, so that tf.data's seed
    handling never has to test a symbolic tensor)."""
    return int(seed) * 1_000_003 + int(epoch) * 7_919 + 1


def epoch_stream(
    base: tf.data.Dataset,
    preprocess: Preprocess,
    batch_size: int,
    steps_per_epoch: int,
    first_epoch: int,
    epochs: int,
    seed: int,
    shuffle_buffer: int,
) -> tf.data.Dataset:
    """Concatenated training epochs first_epoch..epochs-1 of `base`, batched.

    Epoch e shuffles `base` with the seed `epoch_seed(seed, e)` (re-shuffled, still
    deterministically, when one epoch needs more than one pass), gives each example the
    stateless seed (epoch seed, position in the epoch) for its augmentation, and yields
    `steps_per_epoch` full batches of `batch_size` (global batch size).
    """
    if not 0 <= first_epoch <= epochs:
        raise ValueError(f"first_epoch must be in [0, epochs={epochs}], got {first_epoch}.")
    if batch_size < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"batch_size and steps_per_epoch must be positive: {batch_size}, {steps_per_epoch}."
        )
    examples_per_epoch = batch_size * steps_per_epoch

    def one_epoch(epoch: int) -> tf.data.Dataset:
        shuffle_seed = epoch_seed(seed, epoch)
        seed_tensor = tf.constant(shuffle_seed, tf.int64)
        shuffled = base.shuffle(shuffle_buffer, seed=shuffle_seed).repeat()
        positioned = shuffled.take(examples_per_epoch).enumerate()
        return positioned.map(
            lambda position, example: preprocess(
                example[0], example[1], tf.stack([seed_tensor, position])
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    # Epochs are built in Python and concatenated (not flat_map over a range of epoch tensors):
    # with a symbolic seed, Dataset.shuffle tests the seed as a Python bool when no global seed
    # is set and fails in graph mode.
    examples = one_epoch(first_epoch)
    if first_epoch == epochs:  # nothing left to train: an empty stream of the same structure
        examples = examples.take(0)
    for epoch in range(first_epoch + 1, epochs):
        examples = examples.concatenate(one_epoch(epoch))
    batched = examples.batch(batch_size, drop_remainder=True)
    return with_data_sharding(batched.prefetch(tf.data.AUTOTUNE))


def _one_hot(label, num_classes: int) -> tf.Tensor:
    return tf.one_hot(tf.cast(label, tf.int32), num_classes, dtype=tf.float32)


def _to_unit_range(image) -> tf.Tensor:
    return tf.cast(image, tf.float32) / 255.0


def plain_preprocess(num_classes: int) -> Preprocess:
    """uint8 image -> float32 in [0, 1] (a channel axis added to HxW images); no augmentation."""

    def transform(image, label, seed):
        del seed
        image = _to_unit_range(image)
        if image.shape.rank == 2:
            image = image[..., tf.newaxis]
        return image, _one_hot(label, num_classes)

    return transform


def cifar_train_preprocess(num_classes: int, padding: int = 4) -> Preprocess:
    """CIFAR augmentation: zero-pad `padding` pixels, random crop back to size, random flip."""

    def transform(image, label, seed):
        image = _to_unit_range(image)
        height, width = image.shape[0], image.shape[1]
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        crop_seed, flip_seed = _split_seed(seed, 2)
        image = tf.image.stateless_random_crop(padded, (height, width, image.shape[2]), crop_seed)
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return image, _one_hot(label, num_classes)

    return transform


def _split_seed(seed, count: int) -> list[tf.Tensor]:
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count)
    return [seeds[i] for i in range(count)]


def normalize_imagenet(image: tf.Tensor) -> tf.Tensor:
    """(x - mean) / std per RGB channel, for images in [0, 1]."""
    return (image - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def random_resized_crop(
    image: tf.Tensor,
    seed: tf.Tensor,
    size: int,
    area_range: tuple[float, float] = (0.08, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
) -> tf.Tensor:
    """A random crop covering `area_range` of the image with an aspect ratio in
    `aspect_ratio_range`, resized (bilinear) to size x size; float32 output, input's range.

    After 10 failed attempts the whole image is used (torchvision falls back to a centre crop).
    """
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    cropped = tf.slice(image, begin, crop_size)
    return tf.image.resize(tf.cast(cropped, tf.float32), (size, size), method="bilinear")


def pca_lighting(image: tf.Tensor, seed: tf.Tensor, std: float) -> tf.Tensor:
    """AlexNet colour noise: add eigvec @ (alpha * eigval), alpha ~ N(0, std^2) per image."""
    alpha = tf.random.stateless_normal((3,), seed, stddev=std)
    eigenvectors = tf.constant(LIGHTING_EIGENVECTORS)
    offset = tf.linalg.matvec(eigenvectors, alpha * tf.constant(LIGHTING_EIGENVALUES))
    return image + offset


def imagenet_train_preprocess(
    image_size: int, num_classes: int, lighting_std: float = 0.0
) -> Preprocess:
    """Random resized crop to image_size, flip, [0, 1], PCA lighting (if std > 0), normalise."""

    def transform(image, label, seed):
        crop_seed, flip_seed, lighting_seed = _split_seed(seed, 3)
        image = random_resized_crop(image, crop_seed, image_size) / 255.0
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        if lighting_std > 0:
            image = pca_lighting(image, lighting_seed, lighting_std)
        image = tf.ensure_shape(normalize_imagenet(image), (image_size, image_size, 3))
        return image, _one_hot(label, num_classes)

    return transform


def resize_shorter_side(image: tf.Tensor, shorter_side: int) -> tf.Tensor:
    """Bilinear resize keeping the aspect ratio so that min(height, width) == shorter_side."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(shorter_side, tf.float32) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), shorter_side)
    return tf.image.resize(tf.cast(image, tf.float32), new_shape, method="bilinear")


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """The centred size x size square of an image at least that large."""
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    return tf.slice(image, tf.stack([top, left, 0]), tf.stack([size, size, shape[2]]))


def imagenet_eval_preprocess(image_size: int, num_classes: int):
    """Shorter side to round(image_size * 256 / 224), centre crop image_size, normalise."""
    resize_to = int(round(image_size * EVAL_RESIZE_RATIO))

    def transform(image, label):
        image = center_crop(resize_shorter_side(image, resize_to), image_size) / 255.0
        image = tf.ensure_shape(normalize_imagenet(image), (image_size, image_size, 3))
        return image, _one_hot(label, num_classes)

    return transform


def load_input_data(
    name: str, data_dir: str | Path | None, image_size: int = 224, allow_download: bool = True
) -> InputData:
    """Open dataset `name` (a key of `DATASETS`) for training and evaluation.

    Fashion-MNIST and MNIST: `cnn_zoo.datasets.load_dataset` (data_dir first, then the usual
    local places). TFDS datasets: `tfds.load(name, data_dir=data_dir, download=False)`; a
    dataset that is not prepared there raises `cnn_zoo.datasets.DatasetNotFoundError`.
    `image_size` applies to ImageNet-style datasets only.
    """
    from cnn_zoo import datasets

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
    if spec.kind == "idx":
        data = datasets.load_dataset(spec.idx_name, data_dir, allow_download=allow_download)
        height, width = data.x_train.shape[1:]
        return InputData(
            spec=spec,
            source=data.source,
            input_shape=(height, width, 1),
            train_base=tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)),
            eval_base=tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test)),
            train_examples=len(data.y_train),
            eval_examples=len(data.y_test),
            image_size=height,
        )
    if data_dir is None:
        raise datasets.DatasetNotFoundError(
            f"{name} is read from a prepared tensorflow-datasets directory: give its data_dir"
        )
    train = datasets.load_tfds(spec.tfds_name, data_dir, spec.train_split)
    evaluation = datasets.load_tfds(spec.tfds_name, data_dir, spec.eval_split)
    train_examples, eval_examples = _split_sizes(spec, data_dir)
    if spec.kind == "cifar":
        input_shape = (32, 32, 3)
        image_size = 32
    else:
        input_shape = (image_size, image_size, 3)
    return InputData(
        spec=spec,
        source=f"tensorflow-datasets {spec.tfds_name} in {data_dir}",
        input_shape=input_shape,
        train_base=train,
        eval_base=evaluation,
        train_examples=train_examples,
        eval_examples=eval_examples,
        image_size=image_size,
    )


def _split_sizes(spec: DatasetSpec, data_dir) -> tuple[int | None, int | None]:
    import tensorflow_datasets as tfds

    splits = tfds.builder(spec.tfds_name, data_dir=str(data_dir)).info.splits
    sizes = []
    for split in (spec.train_split, spec.eval_split):
        try:
            sizes.append(int(splits[split].num_examples) or None)
        except KeyError:  # metadata without split sizes (e.g. tfds.testing.mock_data)
            sizes.append(None)
    return sizes[0], sizes[1]
