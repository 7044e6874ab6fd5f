import numpy as np
import torch

from tinyml_utils.models import DNN
from tinyml_utils.train import accuracy, fit, spec_augment


def toy_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 12, n)
    X = rng.standard_normal((n, 49, 10)).astype(np.float32)
    X[np.arange(n), y * 4, :] += 6.0  # a learnable pattern: a loud frame whose index names the class
    return X, y.astype(np.int64)


def test_fit_is_seeded_and_learns():
    X, y = toy_data()
    a, b = DNN(hidden=32), DNN(hidden=32)
    b.load_state_dict(a.state_dict())
    ha = fit(a, (X, y), (X, y), epochs=6, lr=1e-2, progress=False)
    hb = fit(b, (X, y), (X, y), epochs=6, lr=1e-2, progress=False)
    assert ha == hb
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert ha["train_loss"][-1] < ha["train_loss"][0]
    assert accuracy(a, X, y) > 0.5


def test_spec_augment_masks_bands():
    x = torch.ones(64, 49, 10)
    out = spec_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and (out == 0).any() and (out == 1).any()
    assert torch.equal(x, torch.ones(64, 49, 10))  # input untouched
