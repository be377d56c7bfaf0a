"""Objects shared by Python threads give the serial results, bit for bit.

Pipelines (web services, Dask's threaded scheduler) call one model, prior or KDE from
several threads at once; the compiled kernels release the GIL, so the calls really overlap.
Each test runs the same calls serially and from 8 threads sharing one object (more calls
than threads, every thread starting at a barrier) and compares with assert_array_equal.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastscore import operators as ops
from fastscore.kde import GaussianKDE
from fastscore.nn import MLP, NoiseConditionalScore, PatchScoreModel
from fastscore.prior import KDEPatchScore, PatchPrior
from fastscore.reconstruct import map_estimate

N_THREADS = 8


def run_shared(fn, inputs):
    """fn over inputs: serially, then from N_THREADS threads released together."""
    serial = [fn(x) for x in inputs]
    barrier = threading.Barrier(N_THREADS)

    def task(i):
        if i < N_THREADS:
            barrier.wait()
        return fn(inputs[i])

    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(task, range(len(inputs))))
    return serial, threaded


def assert_all_equal(serial, threaded):
    for k, (a, b) in enumerate(zip(serial, threaded)):
        np.testing.assert_array_equal(a, b, err_msg=f"call {k}")


def small_model(**invariances):
    # one OpenMP thread inside the kernels: the Python threads are what is tested here
    ncs = NoiseConditionalScore.for_patches((3, 3), hidden=(32, 64, 32), rng=0,
                                            n_threads=1)
    return PatchScoreModel(ncs, 3, sigma_min=0.05, sigma_max=1.0, **invariances)


def images(n, shape=(24, 24), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


@pytest.mark.parametrize("method", ["predict", "jacobian_diagonal"])
def test_mlp_shared(method):
    net = MLP((9, 64, 128, 64, 9), rng=0)
    rng = np.random.default_rng(1)
    # different batch sizes: different tiles and scratch sizes in each thread
    xs = [rng.standard_normal((1500 + 97 * k, 9)).astype(np.float32) for k in range(16)]
    assert_all_equal(*run_shared(getattr(net, method), xs))


def test_mlp_forward_backward_input_grad_per_thread():
    # forward keeps its activations per thread, so the input gradient of each thread's
    # own batch is right (the parameter gradient `grad` is one shared buffer)
    net = MLP((9, 64, 64, 9), rng=0)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((200 + 31 * k, 9)).astype(np.float32) for k in range(16)]

    def input_grad(x):
        y = net.forward(x)
        return net.backward(y, input_grad=True)

    assert_all_equal(*run_shared(input_grad, xs))


@pytest.mark.parametrize("invariances, dtype", [
    ({}, np.float32), ({}, np.float64), ({"dc": True, "symmetrize": True}, np.float32)])
def test_patch_model_shared(invariances, dtype):
    model = small_model(**invariances)          # float32 network; float64 uses its twin
    rng = np.random.default_rng(3)
    n = 200 if invariances else 1500            # symmetrisation scores 8 copies
    xs = [rng.standard_normal((n + 50 * k, 9)).astype(dtype) for k in range(12)]
    assert_all_equal(*run_shared(lambda v: model.score(v, 0.1), xs))
    assert_all_equal(*run_shared(lambda v: model.denoise(v, 0.2), xs))


@pytest.mark.parametrize("tiling", ["overlap", "random_shift"])
def test_patch_prior_shared(tiling):
    prior = PatchPrior(small_model(), 3, tiling=tiling)
    xs = images(12, (40, 40))
    # random shifts: each call names its own stream, as a pipeline must for reproducibility
    assert_all_equal(*run_shared(lambda x: prior.score(x, 0.1, rng=7), xs))


def test_map_estimate_shared_prior():
    prior = PatchPrior(small_model(), 3)
    op = ops.Identity((24, 24))
    ys = images(10, (24, 24))

    def solve(y):
        return map_estimate(y, op, 0.1, prior, method="hqs", n_steps=2).x

    assert_all_equal(*run_shared(solve, ys))


def test_gaussian_kde_shared():
    rng = np.random.default_rng(4)
    kde = GaussianKDE(0.3).fit(rng.standard_normal((3000, 9)).astype(np.float32))
    qs = [rng.standard_normal((64 + 13 * k, 9)).astype(np.float32) for k in range(16)]
    assert_all_equal(*run_shared(kde.score, qs))
    assert_all_equal(*run_shared(kde.log_density, qs))


def test_kde_patch_score_cache_shared():
    # more noise levels than cached KDEs: threads evict each other's entries
    rng = np.random.default_rng(5)
    score = KDEPatchScore(rng.standard_normal((2000, 4)), 0.1)
    levels = [0.05 * (1 + k % 6) for k in range(24)]
    v = rng.standard_normal((50, 4))
    assert_all_equal(*run_shared(lambda s: score.score(v, s), levels))
