import torch

from tinyml_utils.models import DNN
from tinyml_utils.train import accuracy, fit, spec_augment
from tinyml_utils.standins import toy_kws_data as toy_data


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


def _train_with_course_seed(monkeypatch, seed: int):
    """A DNN trained by `fit` under TINYML_SEED=seed, from the init `seed_everything(0)` gives."""
    from tinyml_utils import config

    monkeypatch.setattr(config, "SEED", seed)
    X, y = toy_data()
    config.seed_everything(0)
    model = DNN(hidden=32)
    fit(model, (X, y), None, epochs=2, lr=1e-2, progress=False)
    return torch.cat([p.detach().ravel() for p in model.parameters()])


def test_course_seed_switch_trains_independent_models(monkeypatch):
    from tinyml_utils import config

    zero, zero_again, one = (_train_with_course_seed(monkeypatch, s) for s in (0, 0, 1))
    assert torch.equal(zero, zero_again)            # same course seed: the same model
    assert not torch.allclose(zero, one)            # another course seed: another model
    monkeypatch.setattr(config, "SEED", 0)
    assert config.course_seed(5) == 5               # seed 0 keeps every historical seed as it was
    monkeypatch.setattr(config, "SEED", 2)
    assert config.course_seed(5) == 2005 and config.run_tag() == f"s2-t{config.THREADS}"


def test_seed_everything_fixes_the_thread_count(monkeypatch):
    from tinyml_utils import config

    monkeypatch.setattr(config, "THREADS", 1)
    torch.set_num_threads(2)
    config.seed_everything(0)
    assert torch.get_num_threads() == 1


def test_prepare_trains_every_cached_model_the_notebooks_load():
    from tinyml_utils.prepare import BASELINES, jobs
    from tinyml_utils.prune.recipes import GRADUAL_LEVELS

    todo = jobs()
    assert len(todo) == len(set(todo))
    assert {f"baseline:{name}" for name in BASELINES} | {f"gradual:{name}" for name in GRADUAL_LEVELS} <= set(todo)
    assert todo[0] == "baseline:ds_cnn_s"           # the model four other jobs fine-tune
