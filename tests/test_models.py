"""Keras models, heads, augmentation and the strategy/precision helper, all on CPU."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from features.mel import mel_weights
from modeling.augment import SpecAugment, mixup, random_crop
from modeling.models import (
    balanced_class_weights,
    build_model,
    compile_model,
    describe_strategy,
    loss_for_task,
    model_names,
    strategy_and_policy,
)
from modeling.models_embedding import multi_level_attention
from modeling.models_logmel import LogMel, cnn14

SR = 8000
CLIP = 4000  # half a second at 8 kHz keeps the CNNs tiny
LOGMEL_KW = {"sample_rate": SR, "n_fft": 256, "hop_length": 128, "n_mels": 16, "fmax": None}
TINY = {
    "multi_level_attention": {"hidden": 16},
    "single_level_attention": {"hidden": 16},
    "decision_level_attention": {"hidden": 16},
    "mlp_baseline": {"hidden": 16},
    "cnn14": {"width": 4, "blocks": 3, "clip_samples": CLIP, **LOGMEL_KW},
    "small_cnn": {"filters": (4, 4, 8, 8), "clip_samples": CLIP, **LOGMEL_KW},
}


def _data(input_kind: str, n: int, num_classes: int, task: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if input_kind == "embedding":
        x = rng.integers(0, 256, size=(n, 10, 128), dtype=np.uint8)
    else:
        x = rng.normal(0, 0.1, size=(n, CLIP)).astype(np.float32)
    if task == "multilabel":
        y = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    else:
        y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, n)]
    return x, y


@pytest.mark.parametrize(("name", "input_kind"), model_names())
def test_model_shapes_and_training(name: str, input_kind: str) -> None:
    keras.utils.set_random_seed(1)
    single = build_model(name, input_kind, 3, "singlelabel", **TINY[name])
    x, y = _data(input_kind, 16, 3, "multilabel")
    probs = np.asarray(single(x, training=False))
    assert probs.shape == (16, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    model = build_model(name, input_kind, 3, "multilabel", **TINY[name])
    out = np.asarray(model(x, training=False))
    assert out.shape == (16, 3)
    assert out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))
    compile_model(model, "multilabel", learning_rate=1e-2, jit_compile=False)
    losses = model.fit(x, y, batch_size=16, epochs=10, verbose=0).history["loss"]
    assert np.mean(losses[-3:]) < losses[0]


def test_attention_separates_held_out_classes() -> None:
    """Each class lights four dims in a few random frames; unseen clips are classified."""
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    n, num_classes = 400, 3
    x = rng.normal(128, 20, size=(n, 10, 128))
    y = (rng.random((n, num_classes)) < 0.4).astype(np.float32)
    for i, c in zip(*np.nonzero(y), strict=True):
        frames = rng.choice(10, size=3, replace=False)
        x[i, frames, 4 * c : 4 * c + 4] += 90
    x = np.clip(x, 0, 255).astype(np.uint8)
    model = compile_model(
        multi_level_attention(num_classes, hidden=32), "multilabel", 1e-2, jit_compile=False
    )
    model.fit(x[:300], y[:300], batch_size=16, epochs=20, verbose=0)
    predicted = np.asarray(model(x[300:], training=False)) > 0.5
    assert np.mean(predicted == y[300:].astype(bool)) > 0.97


def test_logmel_matches_numpy_reference_on_a_tone() -> None:
    n_fft, hop, n_mels, freq = 256, 128, 16, 1000.0
    t = np.arange(SR) / SR
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    layer = LogMel(SR, n_fft, hop, n_mels, fmin=0.0, fmax=None, power=2.0)
    got = np.asarray(layer(wave[None]))[0]

    frames = 1 + (len(wave) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    framed = np.stack([wave[i * hop : i * hop + n_fft] for i in range(frames)]) * window
    power = np.abs(np.fft.rfft(framed, axis=1)) ** 2
    weights = mel_weights(n_mels, n_fft, SR, 0.0, SR / 2)
    expected = np.log(power @ weights + 1e-6)
    assert got.shape == (frames, n_mels)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)

    bin_hz = np.linspace(0, SR / 2, n_fft // 2 + 1)
    tone_band = int(np.argmax(weights[np.argmin(np.abs(bin_hz - freq))]))
    assert np.all(np.argmax(got, axis=1) == tone_band)


def test_logmel_magnitude_and_variable_length() -> None:
    inputs = keras.Input((None,))
    outputs = LogMel(SR, 256, 128, 16, fmin=0.0, power=1.0)(inputs)
    assert tuple(outputs.shape) == (None, None, 16)
    model = keras.Model(inputs, outputs)
    for samples in (1000, 3000):
        frames = 1 + (samples - 256) // 128
        assert model(np.ones((2, samples), np.float32)).shape == (2, frames, 16)


def test_mixup_is_a_convex_combination_with_shared_lambda() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 10, 4)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    mixed = mixup(x, y, alpha=0.4, rng=3)
    assert sorted(mixed.partner) == list(range(8))
    assert np.all((mixed.lam >= 0) & (mixed.lam <= 1))
    lam = mixed.lam
    np.testing.assert_allclose(
        mixed.x, lam[:, None, None] * x + (1 - lam[:, None, None]) * x[mixed.partner], rtol=1e-6
    )
    np.testing.assert_allclose(mixed.y, lam[:, None] * y + (1 - lam[:, None]) * y[mixed.partner])
    np.testing.assert_allclose(mixed.y.sum(axis=1), 1.0, rtol=1e-6)
    again = mixup(x, y, alpha=0.4, rng=3)
    np.testing.assert_array_equal(again.x, mixed.x)
    with pytest.raises(ValueError, match="alpha"):
        mixup(x, y, alpha=0.0)


def test_spec_augment_masks_only_in_training() -> None:
    x = np.ones((4, 50, 32), np.float32)
    layer = SpecAugment(time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=6, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    assert set(np.unique(masked)) <= {0.0, 1.0}
    assert 0 < np.mean(masked == 0) < 0.6
    zero_rows = masked == 0
    # every zero lies in a whole masked time row or a whole masked frequency column
    full_time = zero_rows.all(axis=2, keepdims=True)
    full_freq = zero_rows.all(axis=1, keepdims=True)
    assert np.array_equal(zero_rows, full_time | full_freq)
    channels = np.asarray(layer(x[..., None], training=True))
    assert channels.shape == (4, 50, 32, 1)


def test_random_crop() -> None:
    wave = np.arange(100, dtype=np.float32)
    crop = random_crop(wave, 30, rng=0)
    assert crop.shape == (30,)
    np.testing.assert_array_equal(np.diff(crop), 1.0)
    padded = random_crop(wave[:10], 30, rng=0)
    assert padded.shape == (30,)
    assert np.count_nonzero(padded) == 9  # sample 0 is itself zero
    np.testing.assert_array_equal(padded[np.flatnonzero(padded)], np.arange(1, 10))
    assert random_crop(np.ones((2, 50)), 20, rng=1).shape == (2, 20)


def test_parameter_counts() -> None:
    counts = multi_level_attention(527).count_params()
    assert 2_000_000 < counts < 3_500_000
    width, mels, classes = 4, 16, 3
    model = cnn14(classes, width=width, blocks=3, n_mels=mels, sample_rate=SR, fmax=None)
    conv = bn = 0
    cin = 1
    for c in (width, 2 * width, 4 * width):
        conv += 9 * cin * c + 9 * c * c
        bn += 2 * 4 * c
        cin = c
    expected = 4 * mels + conv + bn + (cin * cin + cin) + (cin * classes + classes)
    assert model.count_params() == expected


def test_class_weighted_losses() -> None:
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.6, 0.3], [0.2, 0.9]], np.float32)
    plain = loss_for_task("multilabel")(y, p)
    same = loss_for_task("multilabel", [1.0, 1.0])(y, p)
    np.testing.assert_allclose(float(same), float(plain), rtol=1e-5)
    only_first = loss_for_task("multilabel", [2.0, 0.0])(y, p)
    np.testing.assert_allclose(float(only_first), -np.mean(np.log([0.6, 0.8])), rtol=1e-4)
    single = loss_for_task("singlelabel", [1.0, 3.0])(y, p / p.sum(axis=1, keepdims=True))
    expected = -np.mean([np.log(0.6 / 0.9), 3 * np.log(0.9 / 1.1)])
    np.testing.assert_allclose(float(single), expected, rtol=1e-4)
    np.testing.assert_allclose(
        balanced_class_weights(np.array([[1, 0], [1, 0], [1, 1]])), [2 / 3, 2]
    )


def test_build_model_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="no model"):
        build_model("cnn14", "embedding", 3)
    with pytest.raises(ValueError, match="task"):
        build_model("mlp_baseline", "embedding", 3, task="regression")


def test_train_step_under_cpu_mirrored_strategy() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = compile_model(
            build_model("multi_level_attention", "embedding", 3, hidden=16),
            "multilabel",
            jit_compile=False,
        )
    x, y = _data("embedding", 8, 3, "multilabel")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.fixture
def restore_policy():
    previous = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.usefixtures("restore_policy")
@pytest.mark.parametrize(
    ("name", "input_kind"), [("multi_level_attention", "embedding"), ("small_cnn", "waveform")]
)
def test_forced_mixed_precision_keeps_float32_outputs(name: str, input_kind: str) -> None:
    strategy, policy = strategy_and_policy(mixed_precision=True)
    assert policy.name == "mixed_float16"
    with strategy.scope():
        model = compile_model(
            build_model(name, input_kind, 3, **TINY[name]), "multilabel", jit_compile=False
        )
    assert model.get_layer("predictions").compute_dtype == "float32"
    x, y = _data(input_kind, 8, 3, "multilabel")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.asarray(model(x, training=False)).dtype == np.float32


@pytest.mark.usefixtures("restore_policy")
def test_strategy_and_policy_on_cpu_defaults_to_float32() -> None:
    strategy, policy = strategy_and_policy()
    if tf.config.list_physical_devices("GPU"):
        assert policy.name == "mixed_float16"
    else:
        assert policy.name == "float32"
        assert strategy.num_replicas_in_sync == 1


@pytest.mark.usefixtures("restore_policy")
def test_describe_strategy_names_the_device_and_the_precision() -> None:
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU"
    assert describe_strategy(*strategy_and_policy(mixed_precision=False)) == f"{device}, float32"
    assert describe_strategy(*strategy_and_policy(mixed_precision=True)) == (
        f"{device}, mixed_float16"
    )
    one = describe_strategy(*strategy_and_policy(mixed_precision=False, devices=["/cpu:0"]))
    assert one == "1 replica (MirroredStrategy: CPU:0), float32"


def test_keras_save_and_load_round_trip(tmp_path) -> None:
    model = compile_model(
        build_model("multi_level_attention", "embedding", 3, hidden=8),
        "multilabel",
        class_weights=[1.0, 2.0, 3.0],
    )
    x, _ = _data("embedding", 4, 3, "multilabel")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5)


@pytest.mark.parametrize("name", ["cnn14", "small_cnn"])
def test_logmel_models_use_panns_batchnorm_momentum(name: str) -> None:
    from modeling.models_logmel import BN_MOMENTUM

    model = build_model(name, "waveform", 3, **TINY[name])
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) >= 5 and BN_MOMENTUM == 0.9
    assert {layer.momentum for layer in norms} == {BN_MOMENTUM}
