"""prune_subp: which layers get wrapped, warnings, exclude, model kinds, weight copying."""

import warnings

import keras
import numpy as np
import pytest

import keras_subp

from .subp_test_models import random_classification_data, small_bn_cnn


def wrapped_names(model):
    return [wrapper.layer.name for wrapper in keras_subp.subp_wrappers(model)]


def test_eligible_layers_are_wrapped_and_others_listed_in_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pruned = keras_subp.prune_subp(small_bn_cnn(odd_layer=True), n=4, seed=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1
    assert "odd" in messages[0] and "not divisible by the block size n=4" in messages[0]
    assert "stem" not in messages[0]  # the first conv is dense by design, not a problem
    assert wrapped_names(pruned) == ["conv1", "conv2"]
    wrapper = keras_subp.subp_wrappers(pruned)[0]
    assert (wrapper.n, wrapper.sparsity, wrapper.criterion) == (4, 0.5, "bpar")
    assert [w.seed for w in keras_subp.subp_wrappers(pruned)] == [0, 1]


def test_eligibility_decisions():
    decisions = keras_subp.block_eligibility(small_bn_cnn(odd_layer=True), n=4)
    assert decisions["stem"] == "first convolution"
    assert decisions["conv1"] == decisions["conv2"] == "eligible"
    assert "not divisible" in decisions["odd"]


def test_copies_weights_so_untrained_wrapped_model_matches_original():
    model = small_bn_cnn()
    pruned = keras_subp.prune_subp(model, n=4, seed=0)
    images, _ = random_classification_data(count=4)
    np.testing.assert_allclose(
        pruned.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert pruned is not model and wrapped_names(model) == []


def test_exclude_by_name_and_predicate():
    model = small_bn_cnn()
    assert wrapped_names(keras_subp.prune_subp(model, n=4, exclude="conv1", seed=0)) == ["conv2"]
    assert wrapped_names(keras_subp.prune_subp(model, n=4, exclude=["conv2"], seed=0)) == ["conv1"]
    by_predicate = keras_subp.prune_subp(
        model, n=4, exclude=lambda layer: layer.kernel_size == (3, 3) and layer.use_bias, seed=0
    )
    assert wrapped_names(by_predicate) == ["conv1"]  # conv2 has a bias, conv1 does not
    with pytest.raises(ValueError, match=r"not in the model: \['missing'\]"):
        keras_subp.prune_subp(model, n=4, exclude=["missing"])
    with pytest.raises(ValueError, match="No layer of model"):
        keras_subp.prune_subp(model, n=4, exclude=["conv1", "conv2"])


def test_sequential_and_nested_models():
    keras.utils.set_random_seed(0)
    sequential = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, name="s_stem"),
            keras.layers.Conv2D(8, 3, name="s_conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    pruned = keras_subp.prune_subp(sequential, n=4, seed=0)
    assert isinstance(pruned, keras.Sequential)
    assert wrapped_names(pruned) == ["s_conv"]
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.Dense(3)(sequential(inputs)))
    assert wrapped_names(keras_subp.prune_subp(outer, n=4, seed=0)) == ["s_conv"]


def test_rejects_bad_arguments_and_subclassed_models():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(8, 3)

        def call(self, inputs):
            return self.conv(inputs)

    with pytest.raises(ValueError, match="Subclassed models cannot be cloned"):
        keras_subp.prune_subp(Subclassed(), n=4)
    with pytest.raises(ValueError, match="positive integer"):
        keras_subp.prune_subp(small_bn_cnn(), n=-4)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        keras_subp.prune_subp(small_bn_cnn(), n=4, sparsity=1.5)
    with pytest.raises(ValueError, match="Unknown criterion"):
        keras_subp.prune_subp(small_bn_cnn(), n=4, criterion="magnitude")
    with pytest.raises(ValueError, match="already a SUBPWrapper"):
        keras_subp.prune_subp(keras_subp.prune_subp(keras.layers.Conv2D(8, 3), n=4), n=4)


def test_single_layer_keeps_its_weights():
    conv = keras.layers.Conv2D(8, 3, name="lonely")
    conv.build((None, 6, 6, 4))
    wrapper = keras_subp.prune_subp(conv, n=4, sparsity=0.25, seed=3)
    assert isinstance(wrapper, keras_subp.SUBPWrapper) and wrapper.layer is conv
    images = np.random.default_rng(0).random((1, 6, 6, 4), dtype=np.float32)
    np.testing.assert_allclose(wrapper(images).numpy(), conv(images).numpy(), rtol=1e-6)
