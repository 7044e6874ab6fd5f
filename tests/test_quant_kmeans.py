"""K-means quantization: Lloyd's fixed point, codebook decoding, per-cluster gradients vs autograd, fine-tuning."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils.models import DSCNN
from tinyml_utils.quant.kmeans import (centroid_gradients, codebook_bytes, finetune_centroids, kmeans_1d,
                                       kmeans_quantize, quantize_model)


def test_kmeans_is_a_lloyd_fixed_point():
    x = np.random.default_rng(0).normal(0, 1, 5000)
    centroids, labels = kmeans_1d(x, 8, iters=200)
    assert np.all(np.diff(centroids) > 0)
    nearest = np.abs(x[:, None] - centroids[None, :]).argmin(1)
    np.testing.assert_array_equal(labels, nearest)            # every value has its nearest centroid
    for j in range(8):                                         # every centroid is its cluster's mean
        assert centroids[j] == pytest.approx(x[labels == j].mean(), abs=1e-5)


def test_kmeans_beats_a_uniform_grid_and_separates_clusters():
    x = np.concatenate([np.full(10, -3.0), np.full(10, 0.1), np.full(10, 5.0)])
    centroids, labels = kmeans_1d(x, 3)
    np.testing.assert_allclose(centroids, [-3.0, 0.1, 5.0], atol=1e-6)
    w = np.random.default_rng(1).laplace(0, 1, (16, 16, 3, 3)).astype(np.float32)
    codebook, idx = kmeans_quantize(w, 3)
    assert codebook.shape == (8,) and idx.dtype == np.uint8 and idx.shape == w.shape
    grid = np.linspace(w.min(), w.max(), 8)
    uniform = grid[np.abs(w[..., None] - grid).argmin(-1)]
    assert np.mean((codebook[idx] - w) ** 2) < np.mean((uniform - w) ** 2)


def test_centroid_gradients_equal_autograd_through_the_codebook():
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(4, generator=g, requires_grad=True)
    idx = torch.randint(0, 4, (5, 3, 2, 2), generator=g)
    weight = codebook[idx]                                     # (5, 3, 2, 2) decoded weights
    weight.retain_grad()
    x = torch.randn(2, 3, 6, 6, generator=g)
    nn.functional.conv2d(x, weight).square().sum().backward()
    ours = centroid_gradients(weight.grad.numpy(), idx.numpy(), 4)
    np.testing.assert_allclose(ours, codebook.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_quantize_model_and_finetune_lower_the_loss():
    torch.manual_seed(0)
    model = DSCNN(channels=(8, 8)).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(0, 3, (128, 49, 10)).astype(np.float32)
    y = model(torch.from_numpy(X)).argmax(1).numpy()           # learnable targets: the float model's own
    q_model, codebooks = quantize_model(model, 2)
    assert set(codebooks) == {"conv1", "dw1", "pw1", "fc"}
    for name, (codebook, idx) in codebooks.items():
        w = dict(q_model.named_modules())[name].weight.detach().numpy()
        assert len(np.unique(w)) <= 4 and np.array_equal(w, codebook[idx.astype(np.int64)])
    loss = lambda m: float(nn.functional.cross_entropy(m(torch.from_numpy(X)), torch.from_numpy(y)).detach())  # noqa: E731
    before = loss(q_model)
    history = finetune_centroids(q_model, codebooks, (X, y), epochs=3, lr=1e-2, progress=False)
    assert loss(q_model) < before and len(history["train_loss"]) == 3
    for name, (codebook, idx) in codebooks.items():            # weights still decode the (new) codebook
        w = dict(q_model.named_modules())[name].weight.detach().numpy()
        np.testing.assert_array_equal(w, codebook[idx.astype(np.int64)])
    assert all(p.requires_grad for p in q_model.parameters())


def test_codebook_bytes_and_errors():
    model = DSCNN(channels=(8, 8))
    _, books = quantize_model(model, {"pw1": 2})
    assert codebook_bytes(books) == (64 * 2 + 4 * 32 + 7) // 8
    others = sum(p.numel() for n, p in model.named_parameters() if n != "pw1.weight")
    assert codebook_bytes(books, model) == (64 * 2 + 4 * 32 + 32 * others + 7) // 8
    with pytest.raises(ValueError, match="not Conv2d/Linear"):
        quantize_model(model, {"pw9": 2})
    with pytest.raises(ValueError, match="1..8"):
        kmeans_quantize(np.ones(4), 9)
