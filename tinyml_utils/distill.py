"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): a small student learns from a big teacher.

The teacher's logits $t$ and the student's logits $s$ are both softened by a temperature $T$,
$p = \\mathrm{softmax}(t / T)$ and $q = \\mathrm{softmax}(s / T)$, and the student is trained on

    loss = (1 - alpha) * CE(s, y) + alpha * T^2 * KL(p || q)

The T^2 keeps the soft term's gradient, T * (q - p) per logit, on the same scale for every T; for
large T it tends to (s - t) / num_classes for zero-mean logits, i.e. matching logits.

`fit_distilled` trains with the course's `train.fit`, looking the teacher's logits up from a table
computed once (`teacher_logits`), so the teacher costs one forward pass over the data in total.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .train import fit, predict


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax of logits / T, (N, C) -> (N, C) probabilities; T > 1 spreads the mass over classes."""
    _check_temperature(temperature)
    return torch.softmax(torch.as_tensor(logits) / temperature, dim=-1)


def kl_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of KL(p || q) in nats, p and q the teacher's and student's softmax at T.

    Shapes (N, C), (N, C) -> scalar. Equals F.kl_div(log q, p, reduction="batchmean").
    """
    _check_temperature(temperature)
    _check_pair(teacher_logits, student_logits)
    log_p = torch.log_softmax(teacher_logits / temperature, dim=-1)
    log_q = torch.log_softmax(student_logits / temperature, dim=-1)
    # sum_c p (log p - log q); log-softmax on both sides avoids log(0) where a probability underflows
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """(1 - alpha) * cross-entropy with the labels + alpha * T^2 * KL(teacher || student) at T.

    Shapes: logits (N, C), y (N,) class indices; returns a scalar. alpha = 0 is plain training,
    alpha = 1 learns from the teacher alone. A label of -1 marks a clip nobody labelled: only the
    teacher's term sees it (the cross-entropy averages over the labelled clips of the batch).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the weight of the teacher's term and must be in [0, 1], got {alpha}")
    labelled = y >= 0
    # a batch without any label contributes no cross-entropy (F.cross_entropy would return nan)
    hard = F.cross_entropy(student_logits[labelled], y[labelled]) if labelled.any() else student_logits.sum() * 0.0
    soft = kl_divergence(teacher_logits, student_logits, temperature)
    return (1.0 - alpha) * hard + alpha * temperature ** 2 * soft


def fit_distilled(student: nn.Module, teacher_logits: np.ndarray, train: tuple, val: tuple | None = None,
                  temperature: float = 4.0, alpha: float = 0.9, **fit_kwargs) -> dict:
    """Train `student` on train = (X (N, 49, 10), y (N,)) with the distillation loss; returns fit's history.

    Labels of -1 mark clips without a label, which the student learns from the teacher alone.

    `teacher_logits` (N, C) holds the teacher's logits for the rows of X (see `teacher_table`).
    Other keyword arguments (epochs, lr, seed, ...) go to `train.fit`, so a distilled student and
    one trained from scratch with the same arguments get the same budget, batches and augmentation.
    """
    X, y = train
    teacher_logits = torch.as_tensor(np.asarray(teacher_logits, dtype=np.float32))
    if teacher_logits.ndim != 2 or len(teacher_logits) != len(X):
        raise ValueError(f"teacher_logits must be (N, C) with one row per training clip (N = {len(X)}), got "
                         f"shape {tuple(teacher_logits.shape)}; compute them with teacher_table(teacher, X)")
    labels = torch.as_tensor(y)

    def loss_fn(logits, rows, _clean_inputs):
        # fit passes each batch's "labels" through untouched: here they are row numbers, so the loss
        # can look up both the true label and the teacher's logits of the same clips
        return distillation_loss(logits, teacher_logits[rows], labels[rows], temperature, alpha)

    return fit(student, (X, np.arange(len(X))), val, loss_fn=loss_fn, **fit_kwargs)


def teacher_table(teacher: nn.Module, X: np.ndarray) -> np.ndarray:
    """The teacher's logits on every clip, (N, 49, 10) -> (N, C) float32, computed once in eval mode.

    The teacher sees the clean clip; the student sees fit's augmented copy of it.
    """
    return predict(teacher, X)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"the temperature divides the logits and must be > 0, got {temperature}")


def _check_pair(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> None:
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher and student logits must have the same shape (N, C), got "
                         f"{tuple(teacher_logits.shape)} and {tuple(student_logits.shape)}")
