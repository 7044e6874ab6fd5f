"""K-means (codebook) quantization, as in Deep Compression (Han et al., 2016).

A layer's weights are clustered into k = 2^b groups; each weight is stored as a b-bit index into
a codebook of k float centroids, and the layer computes with codebook[index]. Unlike a linear
grid, the centroids follow the weights' distribution: dense where weights are many.

Fine-tuning moves the centroids, not the weights: every weight in cluster j equals c_j, so by
the chain rule dL/dc_j = sum of dL/dw over the weights in cluster j. The gradient of the loss with
respect to the decoded weights is computed as usual, then aggregated per cluster (a bincount)
and the centroids take an optimizer step. `centroid_gradients` is that aggregation; the tests
check it against autograd through `codebook[indices]`.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def kmeans_1d(values, k: int, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on a 1-D array: (centroids float32 (k,) sorted, labels int64 same shape as values).

    Centroids start evenly spaced between min and max (Deep Compression's "linear" initialisation,
    which keeps the rare large weights represented). In 1-D the nearest centroid is found by
    binary search on the midpoints between sorted centroids. An empty cluster keeps its centroid.
    """
    x = np.asarray(values, dtype=np.float64)
    flat = x.ravel()
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if flat.size == 0:
        raise ValueError("k-means needs at least one value")
    centroids = np.linspace(flat.min(), flat.max(), k)
    for _ in range(iters):
        labels = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, flat)
        sums = np.bincount(labels, weights=flat, minlength=k)
        counts = np.bincount(labels, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(new, centroids, rtol=0, atol=1e-12):
            break
        centroids = np.sort(new)
    labels = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, flat)
    return centroids.astype(np.float32), labels.reshape(x.shape).astype(np.int64)


def kmeans_quantize(weight, bits: int, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A weight tensor as (codebook float32 (2^bits,), indices uint8 same shape); decode with codebook[indices]."""
    if not 1 <= bits <= 8:
        raise ValueError(f"codebook bits must be 1..8 (indices stored in uint8), got {bits}")
    codebook, labels = kmeans_1d(weight, 2**bits, iters)
    return codebook, labels.astype(np.uint8)


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d and Linear layers whose weights get quantized."""
    return [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def quantize_model(model: nn.Module, bits: int | dict, iters: int = 50) -> tuple[nn.Module, dict]:
    """A copy of `model` with every Conv2d/Linear weight replaced by its k-means decoding.

    `bits` is an int or {layer name: bits} (layers not named stay float). Returns
    (model copy, {layer name: (codebook (2^b,), indices uint8)}); biases and batch norm stay float.
    """
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    names = weight_layers(model)
    chosen = bits if isinstance(bits, dict) else {name: bits for name in names}
    unknown = set(chosen) - set(names)
    if unknown:
        raise ValueError(f"bits names {sorted(unknown)}, not Conv2d/Linear layers of the model {names}")
    codebooks = {}
    for name, b in chosen.items():
        weight = modules[name].weight
        codebook, indices = kmeans_quantize(weight.detach().numpy(), b, iters)
        codebooks[name] = (codebook, indices)
        with torch.no_grad():
            weight.copy_(torch.from_numpy(codebook[indices.astype(np.int64)]))
    return model, codebooks


def centroid_gradients(weight_grad, indices, k: int) -> np.ndarray:
    """dL/dc_j = sum of dL/dw over the weights with index j: float64 (k,)."""
    return np.bincount(np.asarray(indices).ravel().astype(np.int64),
                       weights=np.asarray(weight_grad, dtype=np.float64).ravel(), minlength=k)


def finetune_centroids(model: nn.Module, codebooks: dict, train: tuple, epochs: int = 1, lr: float = 1e-3,
                       batch_size: int = 64, seed: int = 0, progress: bool = True) -> dict:
    """Train the centroids only (Adam on the aggregated gradients); the model keeps decoding codebook[indices].

    `model` and `codebooks` are what `quantize_model` returned; both are updated in place.
    Batch norm stays in eval mode (its statistics are part of the trained model). Returns the
    per-epoch mean training loss.
    """
    from tqdm.auto import tqdm

    from ..config import CI, seed_everything
    from ..train import batches

    rng = seed_everything(seed)
    modules = dict(model.named_modules())
    centroids = {name: torch.tensor(cb, dtype=torch.float32) for name, (cb, _) in codebooks.items()}
    index = {name: torch.from_numpy(idx.astype(np.int64)) for name, (_, idx) in codebooks.items()}
    opt = torch.optim.Adam(list(centroids.values()), lr=lr)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in centroids:
        modules[name].weight.requires_grad_(True)
    model.eval()
    history = []
    X, y = train
    for _ in tqdm(range(epochs), desc="centroid fine-tuning", disable=not progress or CI):
        total, count = 0.0, 0
        for xb, yb in batches(X, y, batch_size, rng):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            for name in centroids:
                modules[name].weight.grad = None
            loss.backward()
            for name, c in centroids.items():                # aggregate per cluster: scatter-add
                c.grad = torch.zeros_like(c).index_add_(0, index[name].ravel(), modules[name].weight.grad.ravel())
            opt.step()
            with torch.no_grad():                             # decode the new centroids into the weights
                for name, c in centroids.items():
                    modules[name].weight.copy_(c[index[name]])
            total, count = total + loss.item() * len(yb), count + len(yb)
        history.append(total / count)
    for p in model.parameters():
        p.requires_grad_(True)
    for name, c in centroids.items():
        codebooks[name] = (c.detach().numpy().copy(), codebooks[name][1])
    return {"train_loss": history}


def codebook_bytes(codebooks: dict, model: nn.Module | None = None, centroid_bits: int = 32) -> int:
    """Storage of the k-means layers: b-bit indices plus a float32 codebook per layer (bytes, rounded up).

    With `model`, adds its other parameters at 32 bits (biases, batch norm, layers left float).
    """
    bits = 0
    for codebook, indices in codebooks.values():
        b = int(np.ceil(np.log2(len(codebook))))
        bits += indices.size * b + len(codebook) * centroid_bits
    if model is not None:
        modules = dict(model.named_modules())
        for name, p in model.named_parameters():
            layer, _, kind = name.rpartition(".")
            if not (kind == "weight" and layer in codebooks and isinstance(modules[layer], (nn.Conv2d, nn.Linear))):
                bits += p.numel() * 32
    return (bits + 7) // 8
