import pytest
import torch

from realtime_style.losses import (LossWeights, PerceptualLoss, content_loss, gram_matrix, style_loss,
                                   tv_loss)
from realtime_style.vgg import VGG19Features


def test_gram_of_known_tensor():
    # one image, 2 channels, 1x2 pixels: rows [1, 2] and [3, 4]
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(features), expected)


def test_gram_is_size_normalised_and_per_image():
    torch.manual_seed(0)
    small = torch.rand(2, 4, 8, 8)
    tiled = small.repeat(1, 1, 2, 2)  # same statistics, four times the pixels
    torch.testing.assert_close(gram_matrix(tiled), gram_matrix(small))
    torch.testing.assert_close(gram_matrix(small)[1:], gram_matrix(small[1:]))


def test_gram_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    features = torch.randn(2, 16, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram_matrix(features.bfloat16().float()))


def test_style_loss_weights_layers_and_broadcasts_targets():
    grams = {"a": torch.ones(2, 3, 3), "b": torch.zeros(2, 3, 3)}
    targets = {"a": torch.zeros(1, 3, 3), "b": torch.full((1, 3, 3), 2.0)}
    assert style_loss(grams, targets, {"a": 1.0, "b": 0.5}).item() == pytest.approx(1.0 + 0.5 * 4.0)
    assert style_loss(grams, grams, {"a": 1.0, "b": 1.0}).item() == 0


def test_content_and_tv_losses():
    a = torch.zeros(1, 2, 3, 3)
    assert content_loss(a + 2, a).item() == pytest.approx(4.0)
    assert tv_loss(torch.full((1, 3, 5, 5), 0.3)).item() == 0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # every horizontal neighbour differs by 1, vertical ones are equal
    assert tv_loss(stripes).item() == pytest.approx(1.0)


def test_perceptual_loss_terms_are_weighted_and_sum():
    torch.manual_seed(0)
    vgg = VGG19Features()  # random weights are enough to check the bookkeeping
    weights = LossWeights(content=2.0, style=3.0, tv=4.0)
    loss = PerceptualLoss(vgg, weights)
    content, style, output = torch.rand(3, 1, 3, 32, 32)
    terms = loss(output, loss.content_targets(content), loss.style_targets(style))
    unweighted = PerceptualLoss(vgg, LossWeights(content=1.0, style=1.0, tv=1.0))
    plain = unweighted(output, unweighted.content_targets(content), unweighted.style_targets(style))
    torch.testing.assert_close(terms.content, 2.0 * plain.content)
    torch.testing.assert_close(terms.style, 3.0 * plain.style)
    torch.testing.assert_close(terms.tv, 4.0 * plain.tv)
    assert terms.as_floats()["total"] == pytest.approx(float(terms.content + terms.style + terms.tv), rel=1e-5)
    same = loss(content, loss.content_targets(content), loss.style_targets(content))
    assert same.content.item() == 0 and same.style.item() == pytest.approx(0, abs=1e-6)
