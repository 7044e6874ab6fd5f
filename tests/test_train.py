import torch

from tinyml_utils.models import DNN
from tinyml_utils.train import accuracy, fit, spec_augment
from tinyml_utils.toys import toy_kws_data as toy_data


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
