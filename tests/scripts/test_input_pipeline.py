"""cnn_zoo.input_pipeline: augmentation geometry against numpy, seeded and resumable streams."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cnn_zoo import input_pipeline as pipeline

MEAN = np.array(pipeline.IMAGENET_MEAN, np.float32)
STD = np.array(pipeline.IMAGENET_STD, np.float32)


def test_eval_transform_resizes_the_shorter_side_and_crops_the_centre():
    # 256 x 512: the shorter side is already 256 (no resampling); the centre 224 x 224 crop
    # spans columns 144..367, so its left half comes from the black and its right from the
    # white half of the image.
    image = np.zeros((256, 512, 3), np.uint8)
    image[:, 256:] = 255
    transform = pipeline.imagenet_eval_preprocess(224, num_classes=5)
    output, label = transform(tf.constant(image), tf.constant(3))
    expected = np.concatenate(
        [np.zeros((224, 112, 3), np.float32), np.ones((224, 112, 3), np.float32)], axis=1
    )
    np.testing.assert_allclose(output.numpy(), (expected - MEAN) / STD, atol=1e-5)
    np.testing.assert_array_equal(label.numpy(), [0, 0, 0, 1, 0])


def test_eval_transform_scales_to_256_over_224_of_the_crop():
    # A 100 x 50 constant image at crop 64: shorter side to round(64 * 256 / 224) = 73, so the
    # resized image is 146 x 73 before the 64 x 64 crop; a constant stays constant.
    image = np.full((100, 50, 3), (51, 102, 204), np.uint8)
    resized = pipeline.resize_shorter_side(tf.constant(image), 73)
    assert tuple(resized.shape) == (146, 73, 3)
    output, _ = pipeline.imagenet_eval_preprocess(64, 2)(tf.constant(image), tf.constant(0))
    expected = (np.array([51, 102, 204], np.float32) / 255 - MEAN) / STD
    np.testing.assert_allclose(output.numpy(), np.broadcast_to(expected, (64, 64, 3)), atol=1e-5)


def test_random_resized_crop_takes_a_window_within_the_area_and_ratio_ranges():
    # Pixel (r, c) holds (r, c, 0): after cropping, the corners of the output tell which
    # window was taken (bilinear resizing keeps the values between the window's bounds).
    height, width = 200, 300
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = tf.constant(np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.float32))
    areas, ratios = [], []
    for seed in range(40):
        crop = pipeline.random_resized_crop(image, tf.constant([seed, 7]), 32).numpy()
        assert crop.shape == (32, 32, 3)
        top, bottom = crop[..., 0].min(), crop[..., 0].max()
        left, right = crop[..., 1].min(), crop[..., 1].max()
        assert 0 <= top <= bottom <= height - 1 and 0 <= left <= right <= width - 1
        crop_height, crop_width = bottom - top + 1, right - left + 1
        areas.append(crop_height * crop_width / (height * width))
        ratios.append(crop_width / crop_height)
    # Up to about one pixel per side of slack from the bilinear sampling positions.
    assert min(areas) > 0.08 * 0.9 and max(areas) <= 1.0
    assert min(ratios) > 0.75 * 0.9 and max(ratios) < (4 / 3) * 1.1
    assert np.std(areas) > 0.05  # really random across seeds
    again = pipeline.random_resized_crop(image, tf.constant([5, 7]), 32).numpy()
    np.testing.assert_array_equal(
        again, pipeline.random_resized_crop(image, tf.constant([5, 7]), 32).numpy()
    )


def test_cifar_augmentation_is_a_shifted_window_of_the_padded_image_or_its_mirror():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    padded = np.pad(image.astype(np.float32) / 255, ((4, 4), (4, 4), (0, 0)))
    transform = pipeline.cifar_train_preprocess(num_classes=10)
    for seed in range(6):
        output, _ = transform(tf.constant(image), tf.constant(1), tf.constant([seed, 0]))
        output = output.numpy()
        windows = [
            padded[top : top + 32, left : left + 32] for top in range(9) for left in range(9)
        ]
        assert any(
            np.array_equal(output, window) or np.array_equal(output, window[:, ::-1])
            for window in windows
        )


def _stream(first_epoch: int, epochs: int, seed: int = 5) -> list[np.ndarray]:
    base = tf.data.Dataset.from_tensor_slices(
        (np.arange(12, dtype=np.uint8).reshape(12, 1, 1), np.arange(12, dtype=np.int64))
    )
    stream = pipeline.epoch_stream(
        base,
        lambda image, label, seed: (tf.cast(label, tf.int64), seed),
        batch_size=4,
        steps_per_epoch=3,
        first_epoch=first_epoch,
        epochs=epochs,
        seed=seed,
        shuffle_buffer=12,
    )
    return [labels.numpy() for labels, _ in stream]


def test_every_epoch_is_a_fresh_permutation_and_a_restart_replays_the_same_batches():
    full = _stream(0, 4)
    assert len(full) == 12
    epochs = [np.concatenate(full[3 * e : 3 * e + 3]) for e in range(4)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(12))
    assert len({tuple(order) for order in epochs}) == 4
    resumed = _stream(2, 4)  # what a run resumed after epoch 2 sees
    for mine, theirs in zip(resumed, full[6:], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert not all(
        np.array_equal(a, b) for a, b in zip(_stream(0, 1, seed=6), full[:3], strict=True)
    )


def test_augmentation_seeds_depend_on_epoch_and_position_only():
    base = tf.data.Dataset.from_tensor_slices((np.zeros((8, 1, 1), np.uint8), np.arange(8)))

    def seeds(first_epoch):
        stream = pipeline.epoch_stream(
            base,
            lambda image, label, seed: (seed, label),
            2,
            4,
            first_epoch,
            2,
            seed=1,
            shuffle_buffer=8,
        )
        return np.concatenate([s.numpy() for s, _ in stream])

    full, resumed = seeds(0), seeds(1)
    np.testing.assert_array_equal(resumed, full[8:])
    assert len({tuple(row) for row in full}) == 16  # every example of every epoch differs


def test_epoch_stream_rejects_bad_arguments():
    base = tf.data.Dataset.range(4).map(lambda x: (x, x))
    with pytest.raises(ValueError, match="first_epoch"):
        pipeline.epoch_stream(base, lambda image, label, seed: (image, label), 2, 2, 3, 2, 0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.epoch_stream(base, lambda image, label, seed: (image, label), 0, 2, 0, 2, 0, 4)


def test_unknown_dataset_and_missing_tfds_directory_are_named():
    from cnn_zoo.datasets import DatasetNotFoundError

    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        pipeline.load_input_data("svhn", None)
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        pipeline.load_input_data("cifar10", None)


def test_mock_imagenet_batches_have_the_crop_size_and_one_hot_labels(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=10):
        data = pipeline.load_input_data("imagenet2012", tmp_path, image_size=48)
        train = data.train_dataset(4, 2, 0, 1, seed=0)
        evaluation = data.eval_dataset(3, steps=2)
        train_batches = [(x.numpy(), y.numpy()) for x, y in train]
        eval_batches = [(x.numpy(), y.numpy()) for x, y in evaluation]
    assert data.input_shape == (48, 48, 3) and data.train_examples is None
    assert [x.shape for x, _ in train_batches] == [(4, 48, 48, 3)] * 2
    assert [x.shape for x, _ in eval_batches] == [(3, 48, 48, 3)] * 2
    for x, y in train_batches + eval_batches:
        assert y.shape[1] == 1000 and np.all(y.sum(axis=1) == 1)
        # Normalised [0, 1] pixels (plus lighting noise) stay within these bounds.
        assert np.all(np.isfinite(x)) and x.min() > -2.5 and x.max() < 3.0
