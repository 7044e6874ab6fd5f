"""Pruning for the course's models (chapter 2): one idea per module.

- `magnitude`: fine-grained magnitude masks (per-layer and global thresholds), applying them,
  keeping them through fine-tuning (`MaskKeeper`), and measuring sparsity;
- `schedule`: per-layer sensitivity scans, choosing per-layer sparsities, the cubic gradual
  schedule and gradual pruning with fine-tuning;
- `channels`: channel ranking, channel masks and physical channel removal for the DS-CNN family;
- `formats`: flash bytes of dense int8, CSR and bitmask storage, with encoders to check them.
"""
from .channels import (ChannelGroup, channel_groups, channel_masks, channel_norms, channels_to_keep,
                       remove_channels)
from .formats import (FORMATS, break_even_sparsity, cheapest_format, format_bytes, from_bitmask, from_csr,
                      model_weight_bytes, tensor_bytes, to_bitmask, to_csr)
from .magnitude import (MaskKeeper, apply_masks, count_zeros, global_masks, layer_masks, layer_sparsity,
                        magnitude_mask, magnitude_threshold, mask_sparsity, num_to_prune, prunable_weights,
                        sparsity)
from .schedule import (allocate_sparsities, cubic_schedule, fine_tune, gradual_prune, masks_for, overall_sparsity, pruned_copy,
                       sensitivity_scan, sparsities_from_scan)
