"""Channel (structured) pruning of the DS-CNN family: rank channels, mask them, remove them.

In a DS-CNN a channel is born in a full or pointwise convolution (its *producer*: conv1 or pw_i),
passes through that layer's batch norm and ReLU, then through the next block's depthwise
convolution (which maps channel c to channel c only) and its batch norm, and is finally read by
the next pointwise convolution (or by the classifier after pooling). So one removed channel
removes, together:

    producer weight row  (C_out, C_in, kH, kW)[c]     + its batch norm's gamma[c], beta[c], stats
    depthwise filter     (C, 1, 3, 3)[c]               + its batch norm's gamma[c], beta[c], stats
    consumer input       pointwise (C_next, C, 1, 1)[:, c]  or  classifier (12, C)[:, c]

The *masked* model zeroes all of those parameters: a zeroed channel then carries exactly 0
(batch norm with gamma = beta = 0 outputs 0), so the physically smaller model computes the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models import DSCNN


@dataclass
class ChannelGroup:
    """Layers that share one set of channels (names of modules in the nn.Sequential)."""
    producer: str            # conv1 or pw_i: the layer whose output channels these are
    producer_bn: str
    depthwise: str | None    # dw_{i+1} and its batch norm, or None before the classifier
    depthwise_bn: str | None
    consumer: str            # pw_{i+1} or fc: reads these channels as its inputs
    width: int               # number of channels


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """The channel groups of a DSCNN: one per producer (conv1, pw1, ..., pw_B)."""
    if not isinstance(model, DSCNN):
        raise TypeError(f"channel pruning here handles the DSCNN family (tinyml_utils.models.DSCNN), got "
                        f"{type(model).__name__}; build the model with models.DSCNN(channels=...)")
    blocks = len(model.config["channels"]) - 1
    producers = ["conv1"] + [f"pw{b}" for b in range(1, blocks + 1)]
    groups = []
    for i, producer in enumerate(producers):
        last = i == blocks
        groups.append(ChannelGroup(producer, f"{producer}_bn", None if last else f"dw{i + 1}",
                                   None if last else f"dw{i + 1}_bn", "fc" if last else f"pw{i + 1}",
                                   getattr(model, producer).out_channels))
    return groups


def channel_norms(model: nn.Module, p: float = 2.0) -> list[torch.Tensor]:
    """Per group, the L_p norm of each producer output channel's weights, shape (C,)."""
    return [getattr(model, g.producer).weight.detach().flatten(1).norm(p=p, dim=1) for g in channel_groups(model)]


def channels_to_keep(model: nn.Module, keep) -> list[torch.Tensor]:
    """Per group, the sorted indices of the channels to keep: the largest L2 norms.

    `keep` is a fraction of each group's channels (e.g. 0.8), or a list with one count per group.
    """
    norms = channel_norms(model)
    if isinstance(keep, (list, tuple)):
        if len(keep) != len(norms):
            raise ValueError(f"keep has {len(keep)} entries but the model has {len(norms)} channel groups")
        counts = [int(k) for k in keep]
    else:
        if not 0.0 < float(keep) <= 1.0:
            raise ValueError(f"keep must be a fraction in (0, 1] of each group's channels, got {keep!r}")
        counts = [max(1, round(float(keep) * len(n))) for n in norms]
    for count, n in zip(counts, norms):
        if not 1 <= count <= len(n):
            raise ValueError(f"cannot keep {count} of {len(n)} channels: keep between 1 and {len(n)}")
    # Stable sort: equal norms keep the lower index, so the choice is deterministic.
    return [torch.sort(torch.argsort(n, descending=True, stable=True)[:c]).values for n, c in zip(norms, counts)]


def channel_masks(model: nn.Module, kept: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks (by parameter name) that zero every parameter of the channels not in `kept`."""
    masks = {}
    for group, idx in zip(channel_groups(model), kept):
        alive = torch.zeros(group.width, dtype=torch.bool)
        alive[idx] = True
        out_rows = [group.producer, group.producer_bn] + ([group.depthwise, group.depthwise_bn] if group.depthwise else [])
        for layer in out_rows:
            module = getattr(model, layer)
            for pname, param in module.named_parameters(recurse=False):
                shape = (-1,) + (1,) * (param.dim() - 1)
                masks[f"{layer}.{pname}"] = masks.get(f"{layer}.{pname}", torch.ones_like(param, dtype=torch.bool)) \
                    & alive.view(shape).expand_as(param)
        consumer = getattr(model, group.consumer)
        shape = (1, -1) + (1,) * (consumer.weight.dim() - 2)
        name = f"{group.consumer}.weight"
        masks[name] = masks.get(name, torch.ones_like(consumer.weight, dtype=torch.bool)) \
            & alive.view(shape).expand_as(consumer.weight)
    return masks


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    dst.weight.copy_(src.weight[idx])
    dst.bias.copy_(src.bias[idx])
    dst.running_mean.copy_(src.running_mean[idx])
    dst.running_var.copy_(src.running_var[idx])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


@torch.no_grad()
def remove_channels(model: nn.Module, kept: list[torch.Tensor]) -> DSCNN:
    """A new, smaller DSCNN holding only the `kept` channels of each group (weights sliced, rewired).

    Its config has the reduced `channels`, so later chapters (quantizer, code generator) can
    consume it like any other DSCNN.
    """
    groups = channel_groups(model)
    if len(kept) != len(groups):
        raise ValueError(f"kept has {len(kept)} index tensors but the model has {len(groups)} channel groups")
    kept = [torch.as_tensor(k, dtype=torch.long) for k in kept]
    small = DSCNN(**{**model.config, "channels": tuple(len(k) for k in kept)})
    inputs = torch.arange(model.config["input_shape"][0])  # conv1 reads every input channel
    for group, idx in zip(groups, kept):
        producer, new_producer = getattr(model, group.producer), getattr(small, group.producer)
        new_producer.weight.copy_(producer.weight[idx][:, inputs])         # rows: kept outputs; cols: kept inputs
        if producer.bias is not None:
            new_producer.bias.copy_(producer.bias[idx])
        _copy_bn(getattr(model, group.producer_bn), getattr(small, group.producer_bn), idx)
        if group.depthwise:
            getattr(small, group.depthwise).weight.copy_(getattr(model, group.depthwise).weight[idx])
            _copy_bn(getattr(model, group.depthwise_bn), getattr(small, group.depthwise_bn), idx)
        inputs = idx  # the next producer (or the classifier) reads only these channels
    fc, new_fc = model.fc, small.fc
    new_fc.weight.copy_(fc.weight[:, inputs])
    new_fc.bias.copy_(fc.bias)
    small.train(model.training)
    return small
