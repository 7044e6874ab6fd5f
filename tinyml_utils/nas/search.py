"""Search under constraints: random search, evolutionary search, and the Pareto front of the results.

Both searches see the same thing: a `fitness(arch) -> float` to maximise (e.g. the supernet's
accuracy estimate) and `Constraints` to meet. Only feasible architectures are ever evaluated,
because checking the analytic costs takes microseconds while one evaluation takes about a second.
The budget is the number of distinct architectures a search evaluates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .costs import Constraints
from .space import Arch, DesignSpace

MAX_TRIES = 10_000  # draws before giving up on finding a feasible (or new) architecture


def sample_feasible(space: DesignSpace, constraints: Constraints, rng: np.random.Generator) -> Arch:
    """An architecture drawn uniformly from the feasible part of `space` (rejection sampling)."""
    for _ in range(MAX_TRIES):
        arch = space.sample(rng)
        if constraints.feasible(arch):
            return arch
    raise RuntimeError(f"no feasible architecture in {MAX_TRIES} draws from {space.name} under "
                       f"{constraints.describe()}: loosen the constraints or pick a smaller design space")


def mutate(arch: Arch, space: DesignSpace, rng: np.random.Generator, prob: float = 0.3) -> Arch:
    """Redraw each gene of `arch` with probability `prob`: depth (new blocks get random widths,
    removed blocks are dropped from the end), each width, first kernel, first stride, dw kernel."""
    channels = list(arch.channels)
    if rng.random() < prob:
        depth = int(rng.choice(space.depths))
        channels = channels[:depth + 1] + [int(rng.choice(space.widths)) for _ in range(depth + 1 - len(channels))]
    channels = [int(rng.choice(space.widths)) if rng.random() < prob else c for c in channels]

    def redraw(options, current):
        return options[rng.integers(len(options))] if rng.random() < prob else current

    return Arch(arch.resolution, tuple(channels), redraw(space.first_kernels, arch.first_kernel),
                redraw(space.first_strides, arch.first_stride), int(redraw(space.dw_kernels, arch.dw_kernel)))


def crossover(a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
    """A child whose every gene comes from `a` or `b` with equal chance. The depth comes from one
    parent; layer i's width from either parent that has a layer i (else from the one that does)."""
    if a.resolution != b.resolution:
        raise ValueError(f"parents read different feature resolutions ({a.resolution} vs {b.resolution}): "
                         "crossover only mixes architectures of one design space")

    def take(x, y):
        return x if rng.random() < 0.5 else y

    depth = take(a.depth, b.depth)
    channels = []
    for i in range(depth + 1):
        options = [p.channels[i] for p in (a, b) if i < len(p.channels)]
        channels.append(options[0] if len(options) == 1 else take(*options))
    return Arch(a.resolution, tuple(channels), take(a.first_kernel, b.first_kernel),
                take(a.first_stride, b.first_stride), take(a.dw_kernel, b.dw_kernel))


@dataclass
class SearchResult:
    """Every architecture a search evaluated, in order, with its fitness."""
    archs: list[Arch] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def add(self, arch: Arch, score: float) -> None:
        self.archs.append(arch)
        self.scores.append(float(score))

    @property
    def best(self) -> Arch:
        """The architecture with the highest fitness (the first one found on ties)."""
        return self.archs[int(np.argmax(self.scores))]

    @property
    def best_score(self) -> float:
        return max(self.scores)

    def best_so_far(self) -> np.ndarray:
        """(budget,) the best fitness after 1, 2, ... evaluations."""
        return np.maximum.accumulate(np.asarray(self.scores))


def random_search(fitness: Callable[[Arch], float], space: DesignSpace, constraints: Constraints,
                  budget: int, rng: np.random.Generator) -> SearchResult:
    """Evaluate `budget` distinct feasible architectures drawn at random; keep them all."""
    result, seen = SearchResult(), set()
    for _ in range(MAX_TRIES):
        if len(seen) == budget:
            break
        arch = sample_feasible(space, constraints, rng)
        if arch not in seen:
            seen.add(arch)
            result.add(arch, fitness(arch))
    return result


def evolutionary_search(fitness: Callable[[Arch], float], space: DesignSpace, constraints: Constraints,
                        budget: int, rng: np.random.Generator, population: int = 16, parents: int = 4,
                        mutation_ratio: float = 0.5, prob: float = 0.3) -> SearchResult:
    """Aging-free evolution as in Once-for-All and MCUNet, within `budget` distinct evaluations.

    Start from `population` random feasible architectures. Each generation keeps the `parents`
    fittest; `mutation_ratio` of the new population are mutants of a random parent, the rest
    crossovers of two; a child is kept only if it is feasible and new. The fittest `population`
    of parents and children survive.
    """
    if not 1 <= parents <= population:
        raise ValueError(f"need 1 <= parents <= population, got parents={parents}, population={population}")
    result, seen = SearchResult(), set()

    def evaluate(arch):
        seen.add(arch)
        result.add(arch, fitness(arch))
        return (result.scores[-1], arch)

    scored = []
    for _ in range(MAX_TRIES):
        if len(scored) == min(population, budget):
            break
        arch = sample_feasible(space, constraints, rng)
        if arch not in seen:
            scored.append(evaluate(arch))
    while len(seen) < budget:
        scored.sort(key=lambda s: -s[0])
        elite = [a for _, a in scored[:parents]]
        children = []
        for _ in range(MAX_TRIES):
            if len(children) == min(population, budget - len(seen)):
                break
            if len(children) < mutation_ratio * population or len(elite) < 2:
                child = mutate(elite[rng.integers(len(elite))], space, rng, prob)
            else:
                i, j = rng.choice(len(elite), size=2, replace=False)
                child = crossover(elite[i], elite[j], rng)
            if constraints.feasible(child) and child not in seen and child not in children:
                children.append(child)
        if not children:
            break  # the neighbourhood of the elite is exhausted
        scored = sorted(scored[:parents] + [evaluate(c) for c in children], key=lambda s: -s[0])[:population]
    return result


def pareto_front(costs, scores) -> np.ndarray:
    """Indices of the points no other point beats: none has lower-or-equal cost and higher-or-equal
    score with one of them strict. Sorted by cost (ascending); of identical points, the first only."""
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    if costs.shape != scores.shape or costs.ndim != 1:
        raise ValueError(f"costs and scores must be 1-D arrays of one length, got {costs.shape} and {scores.shape}")
    order = np.lexsort((-scores, costs))          # by cost, then best score first among equal costs
    front, best = [], -np.inf
    for i in order:
        if scores[i] > best:
            front.append(int(i))
            best = scores[i]
    return np.array(front, dtype=int)


def feasible_macs(space: DesignSpace, constraints: Constraints, samples: int, rng: np.random.Generator) -> np.ndarray:
    """MACs of the feasible ones among `samples` architectures drawn uniformly from `space` (sorted)."""
    from .costs import macs

    archs = [space.sample(rng) for _ in range(samples)]
    return np.sort(np.array([macs(a) for a in archs if constraints.feasible(a)], dtype=np.int64))


def select_space(spaces, constraints: Constraints, samples: int = 2000, seed: int = 0):
    """TinyNAS's design-space choice: the space whose feasible models have the highest median MACs.

    Returns (best space, {space name: {"feasible": fraction, "median_macs": ..., "macs": sorted array}}).
    """
    table = {}
    for space in spaces:
        m = feasible_macs(space, constraints, samples, np.random.default_rng(seed))
        table[space.name] = {"feasible": len(m) / samples, "median_macs": float(np.median(m)) if len(m) else 0.0,
                             "macs": m}
    best = max(spaces, key=lambda s: table[s.name]["median_macs"])
    return best, table
