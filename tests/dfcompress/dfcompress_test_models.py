"""Small seeded BN networks for the dfcompress tests."""

from __future__ import annotations

import keras
import numpy as np

L = keras.layers


def random_bn_statistics(model: keras.Model, rng: np.random.Generator) -> keras.Model:
    """Give every BatchNormalization random gamma, beta, moving mean and variance (in place)."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(0.0, 0.3, c),
                    rng.normal(0.0, 0.3, c),
                    rng.uniform(0.5, 2.0, c),
                ]
            )
    return model


def conv_net(
    seed: int,
    sequential: bool = False,
    head: str = "gap",
    widths: tuple[int, ...] = (12, 16, 16),
    input_shape: tuple[int, int, int] = (10, 10, 3),
) -> keras.Model:
    """Conv-BN-ReLU stacks (3x3, same padding, max-pool between) -> GAP or Flatten -> Dense(5)."""
    keras.utils.set_random_seed(seed)
    layers: list = []
    for index, width in enumerate(widths):
        if index:
            layers.append(L.MaxPooling2D(2, name=f"pool{index}"))
        layers += [
            L.Conv2D(width, 3, padding="same", name=f"conv{index}"),
            L.BatchNormalization(name=f"bn{index}"),
            L.ReLU(name=f"relu{index}"),
        ]
    layers.append(L.GlobalAveragePooling2D(name="gap") if head == "gap" else L.Flatten(name="flat"))
    layers.append(L.Dense(5, name="classifier"))
    if sequential:
        model = keras.Sequential([keras.Input(input_shape), *layers], name="seq")
    else:
        inputs = keras.Input(input_shape)
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x, name="func")
    return random_bn_statistics(model, np.random.default_rng(seed))


def residual_net(seed: int) -> keras.Model:
    """Stem, two basic blocks (3x3 conv1 -> BN -> ReLU -> 3x3 conv2 -> BN -> Add), GAP, Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10, 10, 3))
    x = L.ReLU(name="stem_relu")(
        L.BatchNormalization(name="stem_bn")(L.Conv2D(16, 3, padding="same", name="stem")(inputs))
    )
    for block in range(2):
        y = L.Conv2D(16, 3, padding="same", use_bias=False, name=f"b{block}_conv1")(x)
        y = L.ReLU(name=f"b{block}_relu1")(L.BatchNormalization(name=f"b{block}_bn1")(y))
        y = L.Conv2D(16, 3, padding="same", use_bias=False, name=f"b{block}_conv2")(y)
        y = L.BatchNormalization(name=f"b{block}_bn2")(y)
        x = L.ReLU(name=f"b{block}_out")(L.Add(name=f"b{block}_add")([x, y]))
    outputs = L.Dense(5, name="classifier")(L.GlobalAveragePooling2D(name="gap")(x))
    return random_bn_statistics(keras.Model(inputs, outputs), np.random.default_rng(seed))


def conv_bn_pairs(model: keras.Model) -> list[tuple[keras.layers.Layer, keras.layers.Layer]]:
    """(Conv2D, the BatchNormalization applied directly to its output) pairs of `model`."""
    bn_by_input = {
        id(layer.input): layer for layer in model.layers if isinstance(layer, L.BatchNormalization)
    }
    return [
        (layer, bn_by_input[id(layer.output)])
        for layer in model.layers
        if isinstance(layer, L.Conv2D) and id(layer.output) in bn_by_input
    ]


def plant_redundant_channels(
    model: keras.Model, rng: np.random.Generator, fraction: float = 0.3, noise: float = 0.05
) -> keras.Model:
    """Make `fraction` of each Conv2D -> BN layer's channels (the smallest by norm) noisy positive
    combinations of two other channels at the BN output: UDFC's premise that a pruned channel's
    information is held by a linear combination of kept channels. Every other weight stays random.
    """
    for layer, bn in conv_bn_pairs(model):
        kernel = layer.kernel.numpy().astype(np.float64)
        bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else None
        gamma, beta, mean, variance = (w.astype(np.float64) for w in bn.get_weights())
        sigma = np.sqrt(variance + bn.epsilon)
        filters = kernel.reshape(-1, kernel.shape[-1])
        channels = filters.shape[1]
        count = channels - int(channels * (1 - fraction))
        redundant = np.arange(channels - count, channels)
        sources = np.arange(channels - count)
        gamma[redundant], variance[redundant] = 1.5, 0.5  # large gamma/sigma: smallest raw filters
        sigma = np.sqrt(variance + bn.epsilon)
        for j in redundant:
            a, b = rng.choice(sources, 2, replace=False)
            ca, cb = rng.uniform(0.2, 0.4, 2)  # small: the redundant channel has the smallest norm
            # BN-folded filter and effective bias of j = ca * (those of a) + cb * (those of b) + noise.
            folded = (
                ca * gamma[a] / sigma[a] * filters[:, a] + cb * gamma[b] / sigma[b] * filters[:, b]
            )
            folded = folded + noise * np.linalg.norm(folded) / np.sqrt(len(folded)) * rng.normal(
                size=folded.shape
            )
            filters[:, j] = folded * sigma[j] / gamma[j]
            k_a = beta[a] - gamma[a] * (mean[a] - (bias[a] if bias is not None else 0)) / sigma[a]
            k_b = beta[b] - gamma[b] * (mean[b] - (bias[b] if bias is not None else 0)) / sigma[b]
            beta[j] = (
                ca * k_a
                + cb * k_b
                + gamma[j] * (mean[j] - (bias[j] if bias is not None else 0)) / sigma[j]
            )
        layer.kernel.assign(filters.reshape(kernel.shape).astype(np.float32))
        weights = [gamma, beta, mean, variance]
        bn.set_weights([w.astype(np.float32) for w in weights])
    return model


def match_bn_statistics_to(model: keras.Model, x: np.ndarray) -> keras.Model:
    """Re-parameterise every BatchNormalization (in place) so that its moving mean and variance are
    the statistics of its input on `x`, with gamma and beta changed so that the model computes
    exactly the same function (gamma' / sigma' = gamma / sigma, beta' - gamma' mu' / sigma' = beta -
    gamma mu / sigma). A trained network's statistics describe its data; random ones do not, and
    UDFC's activation objective reads them. The paper's objective (BN-folded filters and effective
    biases) is unchanged by this."""
    bns = [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]
    inputs = keras.Model(model.inputs, [bn.input for bn in bns]).predict(x, verbose=0)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    for bn, z in zip(bns, inputs, strict=True):
        z = np.asarray(z, dtype=np.float64).reshape(-1, z.shape[-1])
        gamma, beta, mean, variance = (w.astype(np.float64) for w in bn.get_weights())
        sigma = np.sqrt(variance + bn.epsilon)
        new_mean, new_variance = z.mean(axis=0), z.var(axis=0)
        new_sigma = np.sqrt(new_variance + bn.epsilon)
        new_gamma = gamma * new_sigma / sigma
        new_beta = beta + gamma * (new_mean - mean) / sigma
        bn.set_weights(
            [w.astype(np.float32) for w in (new_gamma, new_beta, new_mean, new_variance)]
        )
    return model


def relative_error(model: keras.Model, reference: np.ndarray, x: np.ndarray) -> float:
    output = np.asarray(model(x, training=False))
    return float(np.linalg.norm(output - reference) / np.linalg.norm(reference))


def vary_filter_scales(
    model: keras.Model, rng: np.random.Generator, spread: float = 4.0
) -> keras.Model:
    """Scale each Conv2D -> BN filter j by s_j, log-uniform in [1/spread, spread], and its BN moving
    mean and sigma by the same s_j: the network computes exactly the same function, but its filters
    differ in norm from channel to channel, as in trained networks (He-initialised filters do not)."""
    for layer, bn in conv_bn_pairs(model):
        channels = layer.filters
        s = np.exp(rng.uniform(-np.log(spread), np.log(spread), channels))
        weights = [w.astype(np.float64) for w in layer.get_weights()]
        weights[0] = weights[0] * s
        if layer.use_bias:
            weights[1] = weights[1] * s
        layer.set_weights(weights)
        gamma, beta, mean, variance = (w.astype(np.float64) for w in bn.get_weights())
        sigma = np.sqrt(variance + bn.epsilon) * s
        bn.set_weights([gamma, beta, mean * s, sigma**2 - bn.epsilon])
    return model


def multiple_channel_model(sequential: bool, head: str) -> keras.Model:
    """conv1 (8 ch) -> BN -> ReLU -> [conv2 (no BN) -> ReLU ->] GAP/Flatten -> Dense; channel 7 of
    conv1 is 0.1 x channel 2 with BN statistics that make its BN output exactly 0.6 x channel 2's."""
    keras.utils.set_random_seed(1)
    layers = [
        L.Conv2D(8, 3, name="conv1"),
        L.BatchNormalization(name="bn1"),
        L.ReLU(name="relu1"),
    ]
    if head == "conv":
        layers += [L.Conv2D(6, 3, name="conv2", activation="relu"), L.GlobalAveragePooling2D()]
    else:
        layers += [L.Flatten(name="flat")]
    layers.append(L.Dense(4, name="classifier"))
    if sequential:
        model = keras.Sequential([keras.Input((9, 9, 3)), *layers])
    else:
        inputs = keras.Input((9, 9, 3))
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("conv1").get_weights())
    kernel = rng.normal(size=kernel.shape)
    bias = rng.normal(size=8)
    kernel[..., 7] = 0.1 * kernel[..., 2]
    bias[7] = 0.1 * bias[2]
    gamma = rng.uniform(0.5, 1.5, 8)
    beta = rng.normal(0, 0.3, 8)
    mean = rng.normal(0, 0.3, 8)
    variance = rng.uniform(0.5, 2.0, 8)
    epsilon = model.get_layer("bn1").epsilon
    sigma2 = np.sqrt(variance[2] + epsilon)
    mean[7] = 0.1 * mean[2]
    variance[7] = (0.1 * sigma2) ** 2 - epsilon
    gamma[7], beta[7] = 0.6 * gamma[2], 0.6 * beta[2]
    model.get_layer("conv1").set_weights([kernel, bias])
    model.get_layer("bn1").set_weights([gamma, beta, mean, variance])
    return model
