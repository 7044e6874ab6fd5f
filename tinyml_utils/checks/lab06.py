"""Checks for lab 6, knowledge distillation. Each compares the student's function with PyTorch or the package."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, expect_close, passed
from .. import distill, profiler
from ..config import at_size
from ..models import ds_cnn_s

TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 10.0)


def _logits(seed: int, n: int = 6, c: int = 12, scale: float = 5.0) -> torch.Tensor:
    return scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def _tensor(what: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def _expect_tensor_close(what: str, got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    got = _tensor(what, got)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if not torch.allclose(got.detach().float(), expected.float(), atol=atol, rtol=rtol):
        worst = (got.detach().float() - expected.float()).abs().max().item()
        raise CheckFailed(f"{what}: values differ from the expected ones by up to {worst:.3g}; "
                          f"expected e.g. {expected.flatten()[:4].tolist()}, got {got.detach().flatten()[:4].tolist()}")


def check_soften(soften) -> None:
    """soften(logits (N, C), T) -> softmax(logits / T) along the class axis."""
    for seed, T in enumerate(TEMPERATURES):
        z = _logits(seed)
        _expect_tensor_close(f"soften(logits, T={T})", soften(z, T), torch.softmax(z / T, dim=1))
    z = torch.tensor([[1000.0, 0.0, -1000.0]])
    _expect_tensor_close("soften([[1000, 0, -1000]], T=1) (subtract the max, or use torch.softmax)",
                         soften(z, 1.0), torch.tensor([[1.0, 0.0, 0.0]]))
    passed("soften equals torch.softmax(logits / T) at every temperature, also for huge logits")


def check_kl(kl_divergence) -> None:
    """kl_divergence(teacher_logits, student_logits, T) -> mean over the batch of KL(p || q) at T."""
    for seed, T in enumerate(TEMPERATURES):
        t, s = _logits(seed), _logits(seed + 100)
        expected = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
        got = _tensor(f"kl_divergence(T={T})", kl_divergence(t, s, T))
        expect_close(f"kl_divergence(teacher, student, T={T}) against F.kl_div(..., reduction='batchmean')",
                     got.item(), expected.item(), rel=1e-4, abs_=1e-6)
    t = _logits(7)
    same = _tensor("kl_divergence", kl_divergence(t, t.clone(), 2.0)).item()
    expect_close("kl_divergence(z, z, 2.0) (a distribution against itself)", same, 0.0, abs_=1e-6)
    got = _tensor("kl", kl_divergence(torch.tensor([[1000.0, -1000.0, 0.0]]), torch.zeros(1, 3), 1.0)).item()
    if not np.isfinite(got):
        raise CheckFailed("kl_divergence with teacher logits [1000, -1000, 0] returned "
                          f"{got}: compute log p and log q with torch.log_softmax, never log(softmax(...))")
    expect_close("kl_divergence([[1000, -1000, 0]], zeros, 1) (a one-hot teacher: KL = log 3)", got, float(np.log(3)),
                 rel=1e-4)
    passed("kl_divergence matches F.kl_div, is 0 for identical logits and stays finite for huge logits")


def check_loss(distillation_loss) -> None:
    """distillation_loss(student_logits, teacher_logits, y, T, alpha) -> (1-alpha) CE + alpha T^2 KL."""
    for seed, (T, alpha) in enumerate([(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (8.0, 1.0), (3.0, 0.25)]):
        s, t = _logits(seed), _logits(seed + 50)
        y = torch.arange(len(s)) % s.shape[1]
        expected = distill.distillation_loss(s, t, y, T, alpha)
        got = _tensor("distillation_loss", distillation_loss(s, t, y, T, alpha))
        expect_close(f"distillation_loss(T={T}, alpha={alpha})", got.item(), expected.item(), rel=1e-4, abs_=1e-6)
    passed("distillation_loss equals (1 - alpha) * CE + alpha * T^2 * KL for every T and alpha tried, "
           "including alpha = 0 (plain cross-entropy) and alpha = 1 (teacher only)")


def check_gradient(kd_gradient) -> None:
    """kd_gradient(student_logits, teacher_logits, T) -> d(T^2 * KL) / d student_logits, shape (N, C)."""
    for seed, T in enumerate(TEMPERATURES):
        s, t = _logits(seed), _logits(seed + 200)
        leaf = s.clone().requires_grad_(True)
        (T ** 2 * distill.kl_divergence(t, leaf, T)).backward()
        _expect_tensor_close(f"kd_gradient(T={T}) against autograd of T^2 * KL (mean over the batch of {len(s)})",
                             kd_gradient(s, t, T), leaf.grad, atol=1e-6)
    passed("kd_gradient equals autograd's gradient: T (q - p) / N")


def check_loss_fn(make_loss_fn) -> None:
    """make_loss_fn(teacher_logits (N, C), labels (N,), T, alpha) -> loss_fn(logits, rows, X) for train.fit."""
    gen = torch.Generator().manual_seed(3)
    table = 4 * torch.randn(40, 12, generator=gen)
    labels = torch.randint(0, 12, (40,), generator=gen)
    for T, alpha in [(4.0, 0.9), (2.0, 0.5), (1.0, 1.0)]:
        loss_fn = make_loss_fn(table.numpy(), labels.numpy(), T, alpha)
        rows = torch.randperm(40, generator=gen)[:16]
        logits = (2 * torch.randn(16, 12, generator=gen)).requires_grad_(True)
        got = _tensor("loss_fn(logits, rows, X)", loss_fn(logits, rows, torch.zeros(16, 49, 10)))
        expected = distill.distillation_loss(logits, table[rows], labels[rows], T, alpha)
        expect_close(f"loss_fn for rows {rows[:4].tolist()}... (T={T}, alpha={alpha}): look up the labels and the "
                     "teacher's logits of those rows", got.item(), expected.item(), rel=1e-4, abs_=1e-6)
        if not got.requires_grad:
            raise CheckFailed("loss_fn returned a loss without a gradient: compute it from `logits` with torch ops")
    passed("loss_fn looks up each row's label and teacher logits and returns the distillation loss")


def check_distilled_student(student, X_test: np.ndarray, y_test: np.ndarray,
                            min_accuracy: float | None = None) -> float:
    """The trained student: smaller than DS-CNN-S in MACs and flash, and accurate on the test clips."""
    from ..train import accuracy

    min_accuracy = at_size(0.6, 0.45) if min_accuracy is None else min_accuracy
    macs, reference_macs = profiler.count_macs(student), profiler.count_macs(ds_cnn_s())
    if macs >= reference_macs:
        raise CheckFailed(f"the student needs {macs:,} MACs; it must need fewer than DS-CNN-S ({reference_macs:,})")
    if profiler.deployed_bytes(student) >= profiler.deployed_bytes(ds_cnn_s()):
        raise CheckFailed("the student must need less flash than DS-CNN-S")
    acc = accuracy(student, X_test, y_test)
    if acc < min_accuracy:
        raise CheckFailed(f"the student recognises {acc:.3f} of the test clips; expected at least {min_accuracy} "
                          "(train it with your loss_fn via fit(..., loss_fn=loss_fn) on (X, row numbers))")
    passed(f"a student with {macs:,} MACs ({reference_macs / macs:.1f}x fewer than DS-CNN-S) "
           f"recognises {acc:.3f} of the test clips")
    return acc
