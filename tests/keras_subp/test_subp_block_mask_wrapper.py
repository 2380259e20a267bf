"""The `BlockMaskWrapper` base class, the `keras_compat` graph queries and the one vocabulary."""

import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_subp
from keras_subp import keras_compat, schedules

from .subp_test_models import small_bn_cnn

REPOSITORY = Path(__file__).resolve().parents[2]


def test_both_wrappers_share_the_base_class_and_its_state():
    conv = keras.layers.Conv2D(8, 3, name="conv")
    subp = keras_subp.SUBPWrapper(conv, n=4, sparsity=0.5, seed=1)
    fixed = keras_subp.FixedBlockMaskWrapper(keras.layers.Conv2D(8, 3, name="conv"), n=4)
    for wrapper, prefix in ((subp, "subp"), (fixed, "one_by_n")):
        assert isinstance(wrapper, keras_subp.BlockMaskWrapper)
        assert wrapper.name == f"{prefix}_conv"
        wrapper.build((None, 6, 6, 5))
        assert wrapper.kernel_shape == (3, 3, 5, 8) and wrapper.input_channels == 5
        assert tuple(wrapper.mask.shape) == (3, 3, 5, 8)
        assert wrapper.non_trainable_weights[0] is wrapper.mask  # first: saved files rely on it
        assert wrapper.compute_output_shape((None, 6, 6, 5)) == (None, 4, 4, 8)
        config = wrapper.get_config()
        assert (config["n"], config["sparsity"]) == (4, 0.5)
        clone = type(wrapper).from_config(config)
        assert type(clone) is type(wrapper) and (clone.n, clone.sparsity) == (4, 0.5)
    assert keras_subp.SUBPWrapper.from_config(subp.get_config()).schedule == subp.schedule
    assert [w.name for w in subp.non_trainable_weights] == ["mask", "schedule_epoch", "rng_state"]
    assert [w.name for w in fixed.non_trainable_weights] == ["mask"]


def test_block_mask_and_kept_blocks_per_group_against_a_hand_made_mask():
    wrapper = keras_subp.FixedBlockMaskWrapper(keras.layers.Conv2D(8, 3), n=4, sparsity=0.5)
    wrapper.build((None, 5, 5, 3))
    block_mask = np.array([[1, 0, 1], [0, 0, 1]], np.float32)  # (G=2, Cin=3)
    kernel_mask = np.ones((3, 3, 3, 8), np.float32)
    kernel_mask[:, :, 1, 0:4] = 0
    kernel_mask[:, :, 0, 4:8] = 0
    kernel_mask[:, :, 1, 4:8] = 0
    wrapper.mask.assign(kernel_mask)
    np.testing.assert_array_equal(wrapper.block_mask(), block_mask)
    assert wrapper.kept_blocks_per_group().tolist() == [2, 1]
    stripped = wrapper.stripped_weights()
    np.testing.assert_array_equal(stripped[0], wrapper.layer.kernel.numpy() * kernel_mask)


def test_base_class_validates_and_has_no_forward_pass_of_its_own():
    with pytest.raises(ValueError, match="not divisible by the block size n=4"):
        keras_subp.BlockMaskWrapper(keras.layers.Conv2D(6, 3), n=4)
    with pytest.raises(ValueError, match="only keras.layers.Conv2D"):
        keras_subp.BlockMaskWrapper(keras.layers.Dense(8), n=4)
    with pytest.raises(ValueError, match="sparsity must be in"):
        keras_subp.FixedBlockMaskWrapper(keras.layers.Conv2D(8, 3), n=4, sparsity=1.0)
    base = keras_subp.BlockMaskWrapper(keras.layers.Conv2D(8, 3), n=4)
    with pytest.raises(NotImplementedError, match="SUBPWrapper or"):
        base(np.zeros((1, 5, 5, 2), np.float32))


def test_prune_subp_treats_any_block_mask_wrapper_as_already_wrapped():
    one_by_n = keras_subp.prune_1xn(small_bn_cnn(), n=4, sparsity=0.5, rearrange=False)
    decisions = keras_subp.block_eligibility(one_by_n, n=4)
    assert decisions["one_by_n_conv1"] == "already wrapped"
    assert decisions["one_by_n_conv2"] == "already wrapped"
    with pytest.raises(ValueError, match="already a FixedBlockMaskWrapper"):
        keras_subp.prune_subp(one_by_n.get_layer("one_by_n_conv1"), n=4)


def test_strip_warns_only_for_subp_wrappers_with_unfinished_schedules():
    subp = keras_subp.prune_subp(small_bn_cnn(), n=4, schedule=schedules.Linear(0, 3), seed=0)
    with pytest.warns(UserWarning, match="subp_conv1 \\(mask never updated\\)"):
        keras_subp.strip_subp(subp)
    fixed = keras_subp.prune_1xn(small_bn_cnn(), n=4, sparsity=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        keras_subp.strip_subp(fixed)


def test_mask_update_counts_use_the_block_vocabulary():
    wrapper = keras_subp.prune_subp(
        keras.layers.Conv2D(8, 3, name="conv"), n=4, sparsity=0.5, schedule=schedules.Linear(0, 2)
    )
    wrapper.build((None, 6, 6, 10))
    update = wrapper.update_mask()  # epoch 0: r = 0, every candidate regrows
    assert (update.groups, update.input_channels) == (2, 10)
    assert update.pruned_blocks_per_group == 0 and update.regrown_blocks_per_group == 5
    update = wrapper.update_mask()  # epoch 1: r = 1/2, R = int((0.5 - 0.25) * 10) = 2
    assert (update.pruned_blocks_per_group, update.regrown_blocks_per_group) == (3, 2)
    assert update.kept_blocks_per_group == 7 and update.block_sparsity == 0.3
    assert wrapper.kept_blocks_per_group().tolist() == [7, 7]
    with pytest.warns(DeprecationWarning, match="pruned_blocks_per_group"):
        assert update.pruned_per_group == 3
    with pytest.warns(DeprecationWarning, match="regrown_blocks_per_group"):
        assert update.regrown_per_group == 2


def test_keras_compat_graph_queries():
    inputs = keras.Input((6, 6, 2))
    shared = keras.layers.Conv2D(4, 1, name="shared")
    a = shared(inputs)  # (6, 6, 4)
    b = shared(keras.layers.AveragePooling2D(2, name="pool")(inputs))  # (3, 3, 4)
    relu = keras.layers.ReLU(name="relu")
    summed = keras.layers.Add(name="add")([relu(a), a])
    model = keras.Model(inputs, [summed, keras.layers.GlobalAveragePooling2D(name="gap")(b)])
    assert keras_compat.is_functional_model(model)
    assert not keras_compat.is_functional_model(keras.Sequential([keras.layers.Dense(2)]))
    assert not keras_compat.is_functional_model(keras.layers.Dense(2))
    assert keras_compat.call_count(shared) == 2 and keras_compat.call_count(relu) == 1
    assert keras_compat.call_count(keras.layers.Dense(2)) == 0
    assert [tuple(t.shape) for t in keras_compat.call_output_tensors(shared)] == [
        (None, 6, 6, 4),
        (None, 3, 3, 4),
    ]
    assert [node.operation.name for node in keras_compat.outbound_nodes(relu)] == ["add"]
    consumers = sorted(node.operation.name for node in keras_compat.outbound_nodes(shared))
    assert consumers == ["add", "gap", "relu"]


PRIVATE_ATTRIBUTE = re.compile(r"(?<![\w])(?!self\.|cls\.)\w+\._[a-z]\w*|[\"']_[a-z]\w*[\"']")


def test_private_keras_attributes_are_read_only_in_keras_compat():
    """No `name._private` (other than self._x / cls._x) and no quoted "_private" attribute name
    in keras_subp, cnn_zoo or the training benchmark, except in keras_subp/keras_compat.py."""
    paths = [
        *(REPOSITORY / "keras_subp").rglob("*.py"),
        *(REPOSITORY / "cnn_zoo").rglob("*.py"),
        REPOSITORY / "scripts" / "benchmark_subp_training.py",
    ]
    offenders = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for path in sorted(paths)
        if path.name != "keras_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE_ATTRIBUTE.search(line)
    ]
    assert offenders == []
