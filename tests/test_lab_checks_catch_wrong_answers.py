"""Known-wrong solutions that a lab check must reject (a check that passes them checks nothing)."""
import numpy as np
import pytest
import torch
from torch import nn

from tinyml_utils.checks import CheckFailed, lab02


def _train(model, masks, X, y, steps, lr, mask_every_step, mask_before, mask_at_end):
    rng = np.random.default_rng(0)
    params = dict(model.named_parameters())

    def reapply():
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].mul_(mask.to(params[name].dtype))

    if mask_before:
        reapply()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = rng.integers(0, len(X), 64)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(X[idx])), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mask_every_step:
            reapply()
    if mask_at_end:
        reapply()
    model.eval()
    return model


def test_lab02_mask_loop_right_answer_passes():
    lab02.check_fine_tune_with_masks(
        lambda m, k, X, y, steps, lr: _train(m, k, X, y, steps, lr, True, True, False))


@pytest.mark.parametrize("wrong", [
    dict(mask_every_step=False, mask_before=False, mask_at_end=True),   # trains freely, masks once at the end
    dict(mask_every_step=False, mask_before=True, mask_at_end=True),    # masks before and after, not in between
    dict(mask_every_step=True, mask_before=False, mask_at_end=False),   # first step runs on unmasked weights
], ids=["mask-at-end", "mask-before-and-after", "no-mask-before"])
def test_lab02_mask_loop_wrong_answers_fail(wrong):
    with pytest.raises(CheckFailed, match="pruned weights were not zero"):
        lab02.check_fine_tune_with_masks(lambda m, k, X, y, steps, lr: _train(m, k, X, y, steps, lr, **wrong))
