"""The distillation loss against PyTorch's own KL divergence, its limits, and the training helper."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_utils import distill
from tinyml_utils.models import DNN, DSCNN, ds_cnn_wide
from tinyml_utils.train import fit
from tinyml_utils.standins import toy_kws_data as toy_data


def logits_pair(n=8, c=12, seed=0, scale=4.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=gen), scale * torch.randn(n, c, generator=gen)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), temperature=st.floats(0.25, 20.0), scale=st.floats(0.1, 30.0))
def test_kl_matches_torch_kl_div(seed, temperature, scale):
    teacher, student = logits_pair(seed=seed, scale=scale)
    ours = distill.kl_divergence(teacher, student, temperature)
    theirs = F.kl_div(F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1),
                      reduction="batchmean")
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert ours >= -1e-6


def test_kl_is_zero_for_identical_logits_and_survives_huge_logits():
    teacher, _ = logits_pair()
    assert distill.kl_divergence(teacher, teacher.clone(), 3.0).abs() < 1e-6
    huge = torch.tensor([[1000.0, -1000.0, 0.0]])
    value = distill.kl_divergence(huge, torch.zeros(1, 3), 1.0)
    assert torch.isfinite(value) and abs(value.item() - np.log(3)) < 1e-4  # p one-hot: KL = -log q = log 3


def test_distillation_loss_limits_and_weighting():
    teacher, student = logits_pair(seed=3)
    y = torch.arange(8) % 12
    ce = F.cross_entropy(student, y)
    kl = distill.kl_divergence(teacher, student, 4.0)
    assert torch.allclose(distill.distillation_loss(student, teacher, y, 4.0, alpha=0.0), ce)
    assert torch.allclose(distill.distillation_loss(student, teacher, y, 4.0, alpha=1.0), 16 * kl)
    assert torch.allclose(distill.distillation_loss(student, teacher, y, 4.0, alpha=0.25), 0.75 * ce + 0.25 * 16 * kl)


def test_soft_gradient_is_t_times_q_minus_p():
    """d(T^2 KL)/ds = T (q - p) / N: the T^2 factor keeps the soft gradient's scale fixed across T."""
    teacher, student = logits_pair(seed=5)
    for temperature in (1.0, 2.0, 8.0):
        s = student.clone().requires_grad_(True)
        (temperature ** 2 * distill.kl_divergence(teacher, s, temperature)).backward()
        q, p = distill.soft_targets(student, temperature), distill.soft_targets(teacher, temperature)
        assert torch.allclose(s.grad, temperature * (q - p) / len(s), atol=1e-6)


def test_soft_targets_flatten_with_temperature():
    teacher, _ = logits_pair(seed=1)
    max_probs = [distill.soft_targets(teacher, t).max(-1).values.mean().item() for t in (0.5, 1, 2, 4, 16)]
    assert all(a > b for a, b in zip(max_probs, max_probs[1:]))
    assert torch.allclose(distill.soft_targets(teacher, 2.0).sum(-1), torch.ones(8))


def test_bad_arguments_say_what_is_wrong():
    teacher, student = logits_pair()
    y = torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        distill.kl_divergence(teacher, student, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        distill.distillation_loss(student, teacher, y, 2.0, alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        distill.kl_divergence(teacher[:, :5], student, 1.0)
    X = np.zeros((10, 49, 10), np.float32)
    with pytest.raises(ValueError, match="one row per training clip"):
        distill.fit_distilled(DNN(hidden=8), np.zeros((9, 12)), (X, np.zeros(10, np.int64)), epochs=1)


def test_alpha_zero_is_plain_training_and_the_helper_learns_from_the_teacher():
    X, y = toy_data()
    kwargs = dict(epochs=3, lr=1e-2, progress=False, seed=1)
    plain, distilled = DNN(hidden=16), DNN(hidden=16)
    distilled.load_state_dict(plain.state_dict())
    fit(plain, (X, y), **kwargs)
    teacher_logits = np.random.default_rng(0).standard_normal((len(X), 12)).astype(np.float32)
    distill.fit_distilled(distilled, teacher_logits, (X, y), alpha=0.0, **kwargs)
    for a, b in zip(plain.parameters(), distilled.parameters()):
        assert torch.allclose(a, b, atol=1e-6)  # same batches, same loss: same model

    # With alpha = 1 the labels are ignored: a student taught "class = 11 - y" learns that mapping.
    flipped = np.eye(12, dtype=np.float32)[11 - y] * 10.0
    student = DNN(hidden=32)
    distill.fit_distilled(student, flipped, (X, y), temperature=2.0, alpha=1.0, epochs=8, lr=1e-2, progress=False)
    student.eval()
    assert (student(torch.from_numpy(X)).argmax(1).numpy() == 11 - y).mean() > 0.8


def test_teacher_table_and_the_teacher_model():
    X, _ = toy_data(20)
    teacher = ds_cnn_wide()
    table = distill.teacher_table(teacher, X)
    assert table.shape == (20, 12) and table.dtype == np.float32
    assert isinstance(teacher, DSCNN) and teacher.config["channels"] == (128,) * 5
    with torch.no_grad():
        assert np.allclose(table, teacher(torch.from_numpy(X)).numpy(), atol=1e-5)


def test_unlabelled_clips_only_see_the_teacher():
    teacher, student = logits_pair(seed=7)
    y = torch.tensor([3, -1, 5, -1, -1, 0, 1, -1])
    labelled = y >= 0
    kl = distill.kl_divergence(teacher, student, 2.0)
    expected = 0.5 * F.cross_entropy(student[labelled], y[labelled]) + 0.5 * 4 * kl
    assert torch.allclose(distill.distillation_loss(student, teacher, y, 2.0, alpha=0.5), expected)
    none = torch.full((8,), -1)
    assert torch.allclose(distill.distillation_loss(student, teacher, none, 2.0, alpha=0.5),
                          0.5 * 4 * distill.kl_divergence(teacher, student, 2.0))


def test_lab06_checks_pass_the_package_and_reject_mistakes():
    from tinyml_utils.checks import CheckFailed, lab06

    lab06.check_soften(distill.soft_targets)
    lab06.check_kl(distill.kl_divergence)
    lab06.check_loss(distill.distillation_loss)
    lab06.check_gradient(lambda s, t, T: T * (distill.soft_targets(s, T) - distill.soft_targets(t, T)) / len(s))

    def make_loss_fn(table, labels, T, alpha):
        table, labels = torch.as_tensor(table), torch.as_tensor(labels)
        return lambda logits, rows, X: distill.distillation_loss(logits, table[rows], labels[rows], T, alpha)

    lab06.check_loss_fn(make_loss_fn)
    naive_kl = lambda t, s, T: (distill.soft_targets(t, T) * (distill.soft_targets(t, T).log()
                                                              - distill.soft_targets(s, T).log())).sum(1).mean()
    def no_t_squared(s, t, y, T, a):
        return (1 - a) * F.cross_entropy(s, y) + a * distill.kl_divergence(t, s, T)

    def labels_only(table, labels, T, a):
        return lambda logits, rows, X: F.cross_entropy(logits, torch.as_tensor(labels)[rows])

    wrong = [(lab06.check_soften, lambda z, T: torch.softmax(z, 1)),                     # forgot T
             (lab06.check_kl, naive_kl),                                                 # log(0) for huge logits
             (lab06.check_loss, no_t_squared),
             (lab06.check_gradient, lambda s, t, T: (distill.soft_targets(s, T) - distill.soft_targets(t, T)) / T),
             (lab06.check_loss_fn, labels_only)]
    for check, fn in wrong:
        with pytest.raises(CheckFailed):
            check(fn)
    X, y = toy_data(30)
    with pytest.raises(CheckFailed, match="fewer than DS-CNN-S"):
        lab06.check_distilled_student(ds_cnn_wide(), X, y, min_accuracy=0.0)
    with pytest.raises(CheckFailed, match="at least"):
        lab06.check_distilled_student(DSCNN(channels=(8, 8)), X, y, min_accuracy=1.01)
    assert 0 <= lab06.check_distilled_student(DSCNN(channels=(8, 8)), X, y, min_accuracy=0.0) <= 1
