"""The NAS package: search space, analytic costs (against the profiler), supernet slicing (against
the extracted model), estimates, search loops, Pareto fronts and rank correlations (against SciPy)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tinyml_utils import profiler
from tinyml_utils.nas import costs, ranking, search
from tinyml_utils.nas.estimate import AccuracyEstimator, calibrate_bn, supernet_key, train_supernet
from tinyml_utils.nas.retrain import is_baseline_recipe, subset_indices
from tinyml_utils.nas.space import (Arch, DesignSpace, design_space_grid, ds_cnn_s_arch, feature_view,
                                    round_width, time_step_for)
from tinyml_utils.nas.supernet import Supernet, centre_crop

LIMITS = costs.Constraints(sram_bytes=32 * 1024, flash_bytes=64 * 1024, macs=2_656_768)


def sampled_archs(n_per_space=6, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for space in design_space_grid() for _ in range(n_per_space)]


# --- space -----------------------------------------------------------------------------------

def test_ds_cnn_s_arch_builds_the_baseline():
    arch = ds_cnn_s_arch()
    model = arch.build()
    assert arch.depth == 4 and arch.input_shape == (1, 49, 10)
    assert profiler.count_macs(model) == 2_656_768 and arch in DesignSpace((49, 10), 1.0)
    assert "49x10" in arch.short()


def test_feature_view_subsamples_frames_and_crops_coefficients():
    X = np.arange(2 * 49 * 10, dtype=np.float32).reshape(2, 49, 10)
    assert np.array_equal(feature_view(X, (49, 10)), X)
    assert np.array_equal(feature_view(X, (25, 6)), X[:, ::2, :6])
    assert feature_view(X, (17, 10)).shape == (2, 17, 10)
    assert [time_step_for(f) for f in (49, 25, 17)] == [1, 2, 3]
    with pytest.raises(ValueError, match="frames"):
        time_step_for(30)
    with pytest.raises(ValueError, match="coeffs"):
        feature_view(X, (49, 11))
    with pytest.raises(ValueError, match="kws_features"):
        feature_view(X[:, :20], (49, 10))


def test_design_space_sampling_stays_inside_and_counts_its_size():
    space = DesignSpace((25, 10), 1.5)
    assert space.widths == (24, 48, 72, 96) and space.name == "r25x10-w1.5"
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(300)]
    assert all(a in space for a in samples)
    assert {a.depth for a in samples} == set(space.depths)
    assert space.largest() in space and costs.macs(space.largest()) >= max(costs.macs(a) for a in samples)
    assert space.size() == sum(4 ** (d + 1) for d in (2, 3, 4, 5)) * 3 * 4 * 2
    assert Arch((49, 10), (64, 64), (10, 4), (2, 2), 3) not in space      # wrong resolution
    assert round_width(0.5 * 16) == 8 and round_width(1.5 * 48) == 72
    with pytest.raises(ValueError, match="odd depthwise kernel"):
        Arch((49, 10), (8, 8), (3, 3), (1, 1), 4)


# --- costs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sampled_archs(), ids=lambda a: a.short())
def test_analytic_costs_equal_the_profiler(arch):
    model = arch.build()
    assert costs.macs(arch) == profiler.count_macs(model, arch.resolution)
    assert costs.flash_bytes(arch) == profiler.deployed_bytes(model, 8)
    assert costs.peak_activation_bytes(arch) == profiler.peak_activation_bytes(model, arch.resolution)
    # SRAM with a resident feature buffer, from the profiler's layer records
    records = [r for r in profiler.profile(model, arch.resolution) if not r.in_place]
    features = records[0].input_elements
    arena = max([records[0].output_elements] + [r.input_elements + r.output_elements for r in records[1:]])
    expected = features + arena
    assert costs.sram_bytes(arch) == expected


def test_even_first_kernel_at_stride_one_grows_the_map_like_the_model():
    arch = Arch((49, 10), (8, 8), (6, 4), (1, 1), 3)     # symmetric 'same' padding adds a row and a column
    out = arch.build().conv1(torch.zeros(1, 1, 49, 10)).shape[2:]
    assert costs.feature_map(arch) == tuple(out) == (50, 11)


def test_ds_cnn_s_costs_and_constraints():
    c = costs.costs(ds_cnn_s_arch())
    assert (c.macs, c.peak_activation_bytes, c.sram_bytes) == (2_656_768, 16_000, 16_000 + 490)
    assert LIMITS.feasible(ds_cnn_s_arch()) and LIMITS.violations(ds_cnn_s_arch()) == {}
    tight = costs.Constraints(sram_bytes=16_000, flash_bytes=10_000)
    assert tight.violations(ds_cnn_s_arch()) == {"sram_bytes": 490, "flash_bytes": c.flash_bytes - 10_000}
    assert "32 KB" in LIMITS.describe() and "2,656,768" in LIMITS.describe()


# --- supernet --------------------------------------------------------------------------------

def test_centre_crop():
    w = torch.arange(10 * 4, dtype=torch.float32).reshape(1, 1, 10, 4)
    assert torch.equal(centre_crop(w, 6, 4), w[..., 2:8, :])
    assert torch.equal(centre_crop(w, 3, 3), w[..., 3:6, 0:3])
    with pytest.raises(ValueError, match="larger"):
        centre_crop(w, 11, 4)


def test_supernet_subnetwork_equals_the_extracted_model():
    space = DesignSpace((25, 6), 0.5)
    torch.manual_seed(0)
    supernet = Supernet(space)
    x = torch.randn(6, 25, 6)
    for arch in [space.sample(np.random.default_rng(s)) for s in range(4)] + [space.largest()]:
        model = supernet.extract(arch).train()        # batch statistics on both sides
        with torch.no_grad():
            assert torch.allclose(supernet(x, arch), model(x), atol=1e-5)
    with pytest.raises(ValueError, match="not in design space"):
        supernet(x, ds_cnn_s_arch())


def test_weights_are_shared_between_subnetworks():
    space = DesignSpace((25, 6), 0.5)
    supernet = Supernet(space)
    small, big = (Arch((25, 6), (8, 8, 8), (3, 3), (2, 2), 3), Arch((25, 6), (32, 32, 32), (10, 4), (1, 1), 5))
    assert torch.equal(supernet.extract(small).pw1.weight, supernet.extract(big).pw1.weight[:8, :8])
    assert torch.equal(supernet.extract(small).dw1.weight, supernet.extract(big).dw1.weight[:8, :, 1:4, 1:4])


def test_calibrate_bn_sets_batch_statistics():
    model = Arch((25, 6), (8, 8), (3, 3), (1, 1), 3).build()
    X = np.random.default_rng(0).normal(size=(64, 25, 6)).astype(np.float32)
    calibrate_bn(model, X)
    assert not model.training and model.conv1_bn.momentum == 0.1
    h = model.conv1(torch.from_numpy(X).unsqueeze(1))
    assert torch.allclose(model.conv1_bn.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(model.conv1_bn.running_var, h.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)


def test_train_supernet_runs_and_estimator_memoises():
    space = DesignSpace((25, 6), 0.5, depths=(2,))
    limits = costs.Constraints(sram_bytes=10_000, flash_bytes=10_000)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 25, 6)).astype(np.float32)
    y = rng.integers(0, 12, 64)
    supernet = Supernet(space)
    history = train_supernet(supernet, limits, (X, y), epochs=2, batch_size=32, progress=False)
    assert len(history["train_loss"]) == 2 and np.isfinite(history["train_loss"]).all()
    estimate = AccuracyEstimator(supernet.eval(), X[:32], X, y)
    arch = search.sample_feasible(space, limits, rng)
    first = estimate(arch)
    assert 0.0 <= first <= 1.0 and estimate(arch) == first and estimate.evaluations == 1
    assert supernet_key(space, limits, 2, 0, "synthetic") != supernet_key(space, limits, 3, 0, "synthetic")


# --- search ----------------------------------------------------------------------------------

SPACE = DesignSpace((49, 10), 1.0)


def test_sample_feasible_and_its_error():
    rng = np.random.default_rng(0)
    assert all(LIMITS.feasible(search.sample_feasible(SPACE, LIMITS, rng)) for _ in range(50))
    with pytest.raises(RuntimeError, match="no feasible"):
        search.sample_feasible(SPACE, costs.Constraints(10, 10), rng)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_mutation_and_crossover_stay_in_the_space(seed):
    rng = np.random.default_rng(seed)
    a, b = SPACE.sample(rng), SPACE.sample(rng)
    child = search.mutate(a, SPACE, rng, prob=0.5)
    assert child in SPACE
    assert search.mutate(a, SPACE, rng, prob=0.0) == a
    mix = search.crossover(a, b, rng)
    assert mix in SPACE and mix.depth in (a.depth, b.depth)
    for i, c in enumerate(mix.channels):
        assert c in [p.channels[i] for p in (a, b) if i < len(p.channels)]
    for gene in ("first_kernel", "first_stride", "dw_kernel"):
        assert getattr(mix, gene) in (getattr(a, gene), getattr(b, gene))


def test_crossover_refuses_two_resolutions():
    with pytest.raises(ValueError, match="resolution"):
        search.crossover(ds_cnn_s_arch(), DesignSpace((25, 10)).sample(np.random.default_rng(0)),
                         np.random.default_rng(0))


def test_searches_respect_budget_and_constraints_and_evolution_climbs():
    fitness = lambda arch: costs.macs(arch) / 1e6  # noqa: E731  (more compute under the limits)
    finals = {"random": [], "evolution": []}
    for seed in range(4):
        rnd = search.random_search(fitness, SPACE, LIMITS, 60, np.random.default_rng(seed))
        evo = search.evolutionary_search(fitness, SPACE, LIMITS, 60, np.random.default_rng(seed), population=12)
        for result in (rnd, evo):
            assert len(result.archs) == 60 == len(set(result.archs))
            assert all(LIMITS.feasible(a) for a in result.archs)
            assert np.all(np.diff(result.best_so_far()) >= 0) and result.best_score == fitness(result.best)
        finals["random"].append(rnd.best_score)
        finals["evolution"].append(evo.best_score)
    assert np.mean(finals["evolution"]) > np.mean(finals["random"])
    with pytest.raises(ValueError, match="parents"):
        search.evolutionary_search(fitness, SPACE, LIMITS, 10, np.random.default_rng(0), population=4, parents=5)


def test_pareto_front():
    cost = [1, 2, 3, 4, 2, 5]
    score = [0.5, 0.7, 0.6, 0.9, 0.7, 0.9]
    assert search.pareto_front(cost, score).tolist() == [0, 1, 3]
    rng = np.random.default_rng(0)
    c, s = rng.random(200), rng.random(200)
    front = search.pareto_front(c, s)
    for i in range(200):       # a point is on the front exactly when nothing dominates it
        dominated = np.any((c <= c[i]) & (s >= s[i]) & ((c < c[i]) | (s > s[i])))
        assert (i in front) == (not dominated)
    with pytest.raises(ValueError, match="1-D"):
        search.pareto_front([1, 2], [1])


def test_select_space_prefers_more_feasible_compute():
    spaces = [DesignSpace((25, 6), 0.5), DesignSpace((49, 10), 1.0)]
    best, table = search.select_space(spaces, LIMITS, samples=300, seed=0)
    assert best == spaces[1] and set(table) == {s.name for s in spaces}
    assert table[spaces[1].name]["median_macs"] > table[spaces[0].name]["median_macs"]


# --- ranking and retraining helpers ----------------------------------------------------------

@pytest.mark.filterwarnings("ignore:An input array is constant")
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=20))
def test_rank_correlations_equal_scipy(pairs):
    x, y = np.array(pairs, dtype=float).T
    assert np.allclose(ranking.ranks(x), stats.rankdata(x))
    rho, tau = ranking.spearman(x, y), ranking.kendall_tau(x, y)
    expected_rho, expected_tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    assert (np.isnan(rho) and np.isnan(expected_rho)) or np.isclose(rho, expected_rho)
    assert (np.isnan(tau) and np.isnan(expected_tau)) or np.isclose(tau, expected_tau)


def test_rank_correlation_errors():
    with pytest.raises(ValueError, match="same length"):
        ranking.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least two"):
        ranking.kendall_tau([1], [1])


def test_subset_and_baseline_recipe():
    assert subset_indices(10, None).tolist() == list(range(10))
    idx = subset_indices(100, 30, seed=1)
    assert len(set(idx.tolist())) == 30 and np.all(np.diff(idx) > 0)
    assert not is_baseline_recipe(ds_cnn_s_arch(), 1, None, 0)
    assert not is_baseline_recipe(Arch((49, 10), (64, 64), (10, 4), (2, 2), 3), 30, None, 0)
