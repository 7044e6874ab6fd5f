"""Small stand-ins for trained models and real data, for unit tests and lab checks.

They run in milliseconds and need no cache, so a check can exercise a student's function on a
model "as if trained" and on data that a model can learn in a few steps.
"""
import numpy as np
import torch
from torch import nn

from .models import DSCNN


def random_dscnn(channels=(16, 12, 10), seed: int = 0) -> DSCNN:
    """A DSCNN with random weights and random batch-norm statistics (as if trained), in eval mode.

    Fresh batch norms are the identity; random statistics make folding and pruning non-trivial."""
    torch.manual_seed(seed)
    model = DSCNN(channels=channels)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def toy_kws_data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` fake MFCC clips of shape (49, 10) with labels 0..11 that a small model learns quickly.

    The pattern: frame 4 * label is loud, so the frame index names the class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 12, n)
    X = rng.standard_normal((n, 49, 10)).astype(np.float32)
    X[np.arange(n), y * 4, :] += 6.0
    return X, y.astype(np.int64)
