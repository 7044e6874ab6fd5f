"""Checks for lab 8, architecture search under memory limits. Each compares the student's function
with the profiler or the package (`tinyml_utils.nas`), on fixed seeds so a pass is reproducible."""
from __future__ import annotations

import numpy as np

from . import CheckFailed, expect_equal, passed
from .. import profiler
from ..nas import costs, search
from ..nas.space import Arch, DesignSpace, design_space_grid, ds_cnn_s_arch

LIMITS = costs.Constraints(sram_bytes=32 * 1024, flash_bytes=64 * 1024, macs=2_656_768)
SPACE = DesignSpace((49, 10), 1.0)
GENES = ("first_kernel", "first_stride", "dw_kernel")


def _archs(per_space: int = 3, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for space in design_space_grid() for _ in range(per_space)]
    # DS-CNN-S, and the even-kernel trap: a 6x4 kernel at stride 1 grows 49x10 into 50x11
    return [ds_cnn_s_arch(), Arch((49, 10), (16, 24, 8), (6, 4), (1, 1), 5)] + archs


def check_macs(arch_macs) -> None:
    """arch_macs(arch) -> MACs per inference, equal to the profiler's count."""
    for arch in _archs():
        expect_equal(f"arch_macs({arch.short()})", arch_macs(arch), profiler.count_macs(arch.build(), arch.resolution))
    passed("arch_macs equals the profiler on 50 architectures (all resolutions, strides and kernels)")


def check_sram(arch_sram) -> None:
    """arch_sram(arch) -> bytes of the resident feature buffer plus the peak activation arena at int8."""
    for arch in _archs(seed=1):
        expected = costs.sram_bytes(arch)     # equal to the profiler's records (tests/test_nas.py)
        got = arch_sram(arch)
        if got != expected:
            hint = (" (did you count the features only while conv1 reads them? they stay resident)"
                    if got == profiler.peak_activation_bytes(arch.build(), arch.resolution) else "")
            raise CheckFailed(f"arch_sram({arch.short()}): expected {expected:,} bytes, got {got!r}{hint}")
    passed("arch_sram counts the resident features plus the largest input + output pair after them")


def _changed(parent: Arch, child: Arch) -> dict[str, bool]:
    out = {gene: getattr(parent, gene) != getattr(child, gene) for gene in GENES}
    out["depth"] = parent.depth != child.depth
    return out


def check_mutate(mutate) -> None:
    """mutate(arch, space, rng, prob) -> an Arch of `space` with each gene redrawn with probability prob."""
    parent = ds_cnn_s_arch()
    for seed in range(200):
        child = mutate(parent, SPACE, np.random.default_rng(seed), 0.5)
        if not isinstance(child, Arch) or child not in SPACE:
            raise CheckFailed(f"mutate(DS-CNN-S, prob=0.5) with seed {seed} returned {child!r}, which is not an "
                              f"Arch of the space (widths {SPACE.widths}, depths {SPACE.depths})")
    for seed in range(20):
        expect_equal("mutate(..., prob=0.0)", mutate(parent, SPACE, np.random.default_rng(seed), 0.0), parent)
    expect_equal("two calls with the same seed", mutate(parent, SPACE, np.random.default_rng(5), 0.3),
                 mutate(parent, SPACE, np.random.default_rng(5), 0.3))
    # A gene redrawn with probability p from n options changes with probability p (1 - 1/n).
    n, prob = 3000, 0.3
    counts = {g: 0 for g in (*GENES, "depth")}
    rng = np.random.default_rng(1)
    for _ in range(n):
        for gene, changed in _changed(parent, mutate(parent, SPACE, rng, prob)).items():
            counts[gene] += changed
    options = {"first_kernel": len(SPACE.first_kernels), "first_stride": len(SPACE.first_strides),
               "dw_kernel": len(SPACE.dw_kernels), "depth": len(SPACE.depths)}
    for gene, k in options.items():
        expected = prob * (1 - 1 / k)
        if abs(counts[gene] / n - expected) > 0.04:
            raise CheckFailed(f"with prob={prob}, gene {gene} changed in {counts[gene] / n:.1%} of mutations; "
                              f"expected about {expected:.1%} (redrawn with probability {prob} from {k} options)")
    passed("mutate stays in the space, is reproducible, and redraws each gene with the given probability")


def check_crossover(crossover) -> None:
    """crossover(a, b, rng) -> an Arch whose every gene comes from a or b."""
    rng = np.random.default_rng(0)
    from_a, differ = {g: 0 for g in GENES}, {g: 0 for g in GENES}
    n = 1000
    for _ in range(n):
        a, b = SPACE.sample(rng), SPACE.sample(rng)
        child = crossover(a, b, rng)
        if not isinstance(child, Arch) or child not in SPACE:
            raise CheckFailed(f"crossover({a.short()}, {b.short()}) returned {child!r}, not an Arch of the space")
        if child.depth not in (a.depth, b.depth):
            raise CheckFailed(f"child depth {child.depth} is neither parent's ({a.depth}, {b.depth})")
        for i, c in enumerate(child.channels):
            allowed = [p.channels[i] for p in (a, b) if i < len(p.channels)]
            if c not in allowed:
                raise CheckFailed(f"child width {c} of layer {i} is not a parent's width there ({allowed}); "
                                  f"parents {a.short()} and {b.short()}")
        for gene in GENES:
            if getattr(child, gene) not in (getattr(a, gene), getattr(b, gene)):
                raise CheckFailed(f"child {gene} {getattr(child, gene)} comes from neither parent")
            if getattr(a, gene) != getattr(b, gene):
                differ[gene] += 1
                from_a[gene] += getattr(child, gene) == getattr(a, gene)
    for gene in GENES:
        share = from_a[gene] / differ[gene]
        if not 0.4 < share < 0.6:
            raise CheckFailed(f"where the parents differ, gene {gene} came from the first parent in {share:.0%} "
                              "of children; pick each gene from either parent with equal chance (about 50%)")
    passed("crossover builds children whose every gene (depth, widths, kernels, stride) comes from a parent")


def check_evolve(evolve) -> None:
    """evolve(fitness, space, constraints, budget, rng) -> list of (arch, score) in evaluation order."""
    fitness_calls = []

    def fitness(arch):
        fitness_calls.append(arch)
        return costs.macs(arch) / 1e6      # the TinyNAS bet: more compute under the limits

    ours, package = [], []
    for seed in range(4):
        fitness_calls.clear()
        history = evolve(fitness, SPACE, LIMITS, 60, np.random.default_rng(seed))
        archs = [a for a, _ in history]
        expect_equal(f"number of (arch, score) pairs returned (seed {seed}, budget 60)", len(history), 60)
        expect_equal("distinct architectures evaluated", len(set(archs)), 60)
        expect_equal("fitness calls (each architecture once, within the budget)", len(fitness_calls), 60)
        infeasible = [a.short() for a in archs if not LIMITS.feasible(a)]
        if infeasible:
            raise CheckFailed(f"evolve evaluated architectures that break the limits: {infeasible[:3]}; "
                              "check the constraints before calling fitness")
        for arch, score in history:
            if abs(score - costs.macs(arch) / 1e6) > 1e-9:
                raise CheckFailed(f"score {score} of {arch.short()} is not what fitness returned")
        ours.append(max(s for _, s in history))
        package.append(search.random_search(fitness, SPACE, LIMITS, 60, np.random.default_rng(seed)).best_score)
    if np.mean(ours) <= np.mean(package):
        raise CheckFailed(f"evolution's best fitness over 4 seeds ({np.mean(ours):.3f} M MACs on average) does "
                          f"not beat random search with the same budget ({np.mean(package):.3f}); do parents "
                          "come from the fittest architectures so far?")
    passed(f"evolve keeps the budget and the limits, and beats random search "
           f"({np.mean(ours):.3f} vs {np.mean(package):.3f} M MACs, the fitness here)")


def check_pareto(pareto_front) -> None:
    """pareto_front(costs, scores) -> indices of the non-dominated points, sorted by cost."""
    rng = np.random.default_rng(0)
    cases = [([1, 2, 3, 4, 2, 5], [0.5, 0.7, 0.6, 0.9, 0.7, 0.9])]
    cases += [(rng.integers(0, 20, n).tolist(), rng.integers(0, 20, n).tolist()) for n in (5, 30, 200)]
    for c, s in cases:
        expected = search.pareto_front(c, s).tolist()
        got = [int(i) for i in pareto_front(np.array(c), np.array(s))]
        if got != expected:
            raise CheckFailed(f"pareto_front on {len(c)} points: expected indices {expected[:12]}"
                              f"{'...' if len(expected) > 12 else ''}, got {got[:12]} (ties: keep one point, "
                              "the first; a point with equal cost and lower score is dominated)")
    passed("pareto_front returns exactly the points nothing dominates, sorted by cost")
