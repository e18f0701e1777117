import pytest
import torch
from torch import nn
from torch.nn import functional as F

from realtime_style.transformer_net import ARCHITECTURES, build_net, reflect_pad_to

SIZES = [(1, 1), (1, 7), (3, 5), (7, 1), (8, 8), (17, 33), (64, 48), (517, 333)]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("height,width", SIZES)
def test_any_size_gives_same_size_in_range(arch, height, width):
    torch.manual_seed(0)
    net = build_net(arch).eval()
    x = torch.rand(2, 3, height, width)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1


def test_fp32_inference_is_deterministic():
    torch.manual_seed(1)
    net = build_net("standard").eval()
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        a, b = net(x), net(x)
    assert torch.equal(a, b)
    torch.manual_seed(1)
    twin = build_net("standard").eval()
    with torch.no_grad():
        assert torch.equal(twin(x), a)


def test_batch_items_are_independent():
    torch.manual_seed(2)
    net = build_net("lite").eval()
    x = torch.rand(3, 3, 32, 40)
    with torch.no_grad():
        together = net(x)
        alone = net(x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-5)


def test_architecture_follows_johnson_with_instance_norm():
    net = build_net("standard")
    modules = list(net.modules())
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in modules)
    norms = [m for m in modules if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine and not m.track_running_stats for m in norms)
    assert any(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in modules)
    assert not any(isinstance(m, nn.Conv2d) and m.padding != (0, 0) for m in modules)  # reflection pads only
    lite = build_net("lite")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(lite) < count(net) / 3


def test_training_clamp_passes_only_gradients_that_lead_back_into_range():
    torch.manual_seed(3)
    net = build_net("lite").train()
    with torch.no_grad():  # push every output far below zero
        net.decoder[-1][1].bias.fill_(-5.0)
    x = torch.rand(1, 3, 16, 16)
    bias = net.decoder[-1][1].bias

    y = net(x)
    assert y.max() == 0  # forward is clamped
    (-y).sum().backward()  # the loss wants them brighter: back toward the range
    assert bias.grad.min() < 0  # so descent raises the bias
    bias.grad = None

    y = net(x)
    y.sum().backward()  # the loss wants them darker still: away from the range
    assert bias.grad.abs().max() == 0  # nothing pushes them further out

    net.zero_grad()
    with torch.no_grad():  # in range, every gradient passes as it is
        net.decoder[-1][1].bias.fill_(0.5)
        net.decoder[-1][1].weight.mul_(0.01)
    y = net(x)
    assert 0 < y.min() and y.max() < 1
    y.sum().backward()
    grads = bias.grad.clone()
    net.zero_grad()
    net.unclamped(x).sum().backward()  # 16 x 16: no padding needed
    assert torch.allclose(bias.grad, grads)


def test_reflect_pad_matches_torch_and_handles_tiny_inputs():
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    torch.testing.assert_close(reflect_pad_to(x, 8, 8), F.pad(x, (0, 2, 0, 3), mode="reflect"))
    one = torch.tensor([[[[7.0]]]])
    assert torch.equal(reflect_pad_to(one, 8, 8), torch.full((1, 1, 8, 8), 7.0))
    row = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    # reflection repeats: 0 1 2 1 0 1 2 1
    assert reflect_pad_to(row, 1, 8)[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="standard"):
        build_net("huge")


def test_lite_colour_skip_passes_the_photos_blurred_chroma_not_its_brightness():
    net = build_net("lite").eval()
    assert net.config.color_skip == 5
    with torch.no_grad():  # a decoder that paints flat grey: what is left of the output is the skip
        net.decoder[-1][1].weight.zero_()
        net.decoder[-1][1].bias.fill_(0.5)
        red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
        grey = torch.full((1, 3, 16, 16), 0.7)
        # chroma of red: (0.4, -0.2, -0.2), passed at COLOR_SKIP_START = 0.75
        torch.testing.assert_close(net(red)[0, :, 5, 5], torch.tensor([0.8, 0.35, 0.35]))
        assert torch.allclose(net(grey), torch.full_like(grey, 0.5))  # brightness does not pass
        speck = torch.full((1, 3, 16, 16), 0.5)
        speck[0, 0, 8, 8] = 1.0  # one noisy pixel: spread over 5 x 5, 1/25 of it each
        out = net(speck)
        assert abs(out[0, 0, 8, 8].item() - (0.5 + 0.75 * (2 / 3) * 0.5 / 25)) < 1e-4
        assert abs(out[0, 0, 10, 10].item() - out[0, 0, 8, 8].item()) < 1e-6  # within the box
        assert out[0, 0, 8, 11].item() == 0.5  # outside it
    standard = build_net("standard")
    assert not hasattr(standard, "color_skip")
