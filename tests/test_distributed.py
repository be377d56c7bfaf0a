"""fastscore.distributed: chunked denoising equal to in-memory, datasets on a cluster
(failures, restarts, a killed worker), the sharded KDE."""

import functools
import os
import re
import signal
import sys
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from fastscore.distributed import (ShardedKDE, combine_shards, denoise_dask,  # noqa: E402
                                   reconstruct_many)
from fastscore.kde import GaussianKDE  # noqa: E402
from fastscore.operators import Identity, Mask  # noqa: E402
from fastscore.patches import PatchOperator  # noqa: E402
from fastscore.prior import GaussianPatchScore, KDEPatchScore, PatchPrior, tv_prior  # noqa: E402
from fastscore.reconstruct import map_estimate  # noqa: E402


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers need no import
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _image(shape, seed=0):
    """A piecewise-constant image with a noisy copy (σ = 0.1)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    clean = 1.0 + 0.5 * ((sum(grids) // 5) % 2)
    return clean, clean + 0.1 * rng.standard_normal(shape)


def _kde_score(patch_shape, seed=1):
    """A nonlinear patch score: the KDE of patches of clean piecewise-constant images."""
    clean, _ = _image((24,) * len(patch_shape), seed)
    patches = PatchOperator(clean.shape, patch_shape).gather(clean)
    rng = np.random.default_rng(seed)
    return KDEPatchScore(patches[rng.choice(len(patches), 300)], 0.05)


def _compare(y, prior, chunks, *, mask=None, rng=None, **options):
    """denoise_dask on a dask copy of y (synchronous scheduler) against map_estimate."""
    operator = Identity(y.shape) if mask is None else Mask(mask)
    want = map_estimate(y, operator, 0.1, prior, tol=0, rng=rng, **options).x
    got = denoise_dask(da.from_array(y, chunks=chunks), prior, 0.1, rng=rng,
                       mask=None if mask is None else da.from_array(mask, chunks=chunks),
                       **options).compute(scheduler="synchronous")
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * scale)
    return got


@pytest.mark.parametrize("padding", ["reflect", "zero", "circular", "valid"])
def test_denoise_2d_equals_in_memory_every_padding(padding):
    _, y = _image((37, 29))
    prior = PatchPrior(_kde_score((3, 3)), 3, padding=padding)
    _compare(y, prior, (16, 12), method="hqs", n_steps=3)


@pytest.mark.parametrize("padding", ["reflect", "zero", "circular"])
def test_denoise_random_shift_even_patch_equals_in_memory(padding, tmp_path):
    # 4 x 4 patches on a random grid: the origins come from the same rng in the same order
    _, y = _image((30, 27))
    score = GaussianPatchScore().fit(np.random.default_rng(3).normal(size=(500, 16)))
    prior = PatchPrior(score, 4, padding=padding, tiling="random_shift")
    want = _compare(y, prior, (11, 9), method="hqs", n_steps=3, rng=7)
    with dask.config.set(scheduler="synchronous"):   # windows read from the Zarr iterates
        stored = denoise_dask(da.from_array(y, chunks=(11, 9)), prior, 0.1, n_steps=3,
                              rng=7, store=tmp_path).compute()
    np.testing.assert_allclose(stored, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding", ["reflect", "zero", "valid"])
def test_denoise_strided_patches_equal_in_memory(padding):
    _, y = _image((25, 22))
    score = GaussianPatchScore().fit(np.random.default_rng(4).normal(size=(500, 16)))
    prior = PatchPrior(score, 4, stride=(2, 3), padding=padding)
    _compare(y, prior, (9, 8), method="hqs", n_steps=2)


def test_denoise_gradient_momentum_tv_and_mask_equal_in_memory(tmp_path):
    _, y = _image((26, 21))
    _compare(y, tv_prior(2.0), (10, 7), method="gradient", momentum=True, n_steps=6)
    with dask.config.set(scheduler="synchronous"):
        stored = denoise_dask(da.from_array(y, chunks=(10, 7)), tv_prior(2.0), 0.1,
                              method="gradient", momentum=True, n_steps=6,
                              store=tmp_path).compute()
    want = map_estimate(y, Identity(y.shape), 0.1, tv_prior(2.0), method="gradient",
                        momentum=True, n_steps=6, tol=0).x
    np.testing.assert_allclose(stored, want, rtol=0, atol=1e-9)
    mask = np.random.default_rng(5).random(y.shape) < 0.7
    _compare(y * mask, PatchPrior(_kde_score((3, 3)), 3), (10, 7), mask=mask,
             method="hqs", n_steps=3)


def test_tweedie_pass_equals_prior_denoise():
    _, y = _image((23, 30))
    prior = PatchPrior(_kde_score((3, 3)), 3, padding="reflect")
    got = denoise_dask(da.from_array(y, chunks=(8, 13)), prior, 0.1, method="tweedie")
    np.testing.assert_allclose(got.compute(scheduler="synchronous"), prior.denoise(y, 0.1),
                               rtol=0, atol=1e-12)


def test_denoise_stack_of_images_equals_in_memory_batch():
    # a 3-D array with a 2-D prior is a stack: no halo across it, random grids shared
    _, y = _image((5, 19, 17))
    score = GaussianPatchScore().fit(np.random.default_rng(2).normal(size=(500, 9)))
    prior = PatchPrior(score, 3, padding="circular", tiling="random_shift")
    want = map_estimate(y, Identity(y.shape[1:]), 0.1, prior, method="hqs", n_steps=3,
                        tol=0, rng=3).x
    got = denoise_dask(da.from_array(y, chunks=(2, 8, 9)), prior, 0.1, n_steps=3,
                       rng=3).compute(scheduler="synchronous")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_denoise_3d_on_cluster_equals_in_memory(client, tmp_path):
    _, y = _image((13, 11, 10))
    score = GaussianPatchScore().fit(np.random.default_rng(6).normal(size=(2000, 27)))
    prior = PatchPrior(score, (3, 3, 3), padding="reflect")
    want = map_estimate(y, Identity(y.shape), 0.1, prior, method="hqs", n_steps=3, tol=0).x
    volume = da.from_array(y, chunks=(6, 5, 4))               # 13 = 6 + 6 + 1: merged
    got = denoise_dask(volume, prior, 0.1, n_steps=3).compute()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    finished = []
    stored = denoise_dask(volume.astype(np.float32), prior, 0.1, n_steps=3,
                          store=tmp_path / "iterates",
                          task_callback=lambda done, total: finished.append((done, total)))
    assert finished == [(k, 3 * 8) for k in range(1, 3 * 8 + 1)]   # 2 x 2 x 2 chunks
    assert sorted(os.listdir(tmp_path / "iterates")) == ["x_2", "x_3", "y_0"]
    want32 = map_estimate(y.astype(np.float32), Identity(y.shape), 0.1, prior,
                          method="hqs", n_steps=3, tol=0).x
    assert stored.dtype == np.float32
    np.testing.assert_allclose(stored.compute(), want32, rtol=0, atol=2e-5)


def test_denoise_errors():
    _, y = _image((20, 20))
    volume = da.from_array(y, chunks=10)
    score = GaussianPatchScore().fit(np.random.default_rng(0).normal(size=(100, 9)))
    with pytest.raises(NotImplementedError, match="PatchPrior"):
        denoise_dask(volume, object(), 0.1)
    with pytest.raises(ValueError, match="dimensions"):
        denoise_dask(volume, PatchPrior(score, (3, 3, 1)), 0.1)
    with pytest.raises(TypeError, match="boolean"):
        denoise_dask(volume, PatchPrior(score, 3), 0.1, mask=np.ones(y.shape))
    with pytest.raises(ValueError, match="method"):
        denoise_dask(volume, PatchPrior(score, 3), 0.1, method="pc")


# -- datasets ------------------------------------------------------------------------------
def _identity_factory(name, y, delay=0.0):
    if y.ndim != 2:
        raise ValueError(f"item {name} is not an image")
    time.sleep(delay)
    return Identity(y.shape)


def test_reconstruct_many_failures_and_restart(client, tmp_path):
    prior = PatchPrior(GaussianPatchScore().fit(
        np.random.default_rng(0).normal(1, 0.3, size=(500, 9))), 3)
    items = {f"s{i}": _image((16, 16), seed=i)[1] for i in range(4)}
    items["bad"] = np.zeros(5)
    options = {"method": "hqs", "n_steps": 3}
    run = reconstruct_many(items, _identity_factory, prior, 0.1, store=tmp_path,
                           options=options, client=client)
    assert sorted(run.written) == ["s0", "s1", "s2", "s3"] and run.skipped == []
    assert list(run.failed) == ["bad"] and "ValueError: item bad" in run.failed["bad"]
    for name in run.written:
        want = map_estimate(items[name], Identity((16, 16)), 0.1, prior, **options).x
        np.testing.assert_array_equal(np.load(run.path(name)), want)
    again = reconstruct_many(items, _identity_factory, prior, 0.1, store=tmp_path,
                             options=options, client=client)
    assert sorted(again.skipped) == ["s0", "s1", "s2", "s3"] and again.written == []
    with pytest.raises(ValueError, match="unknown"):
        reconstruct_many(items, _identity_factory, prior, 0.1, store=tmp_path,
                         options={"n_step": 3}, client=client)


def test_reconstruct_many_survives_a_killed_worker(client, tmp_path):
    prior = PatchPrior(GaussianPatchScore().fit(
        np.random.default_rng(0).normal(1, 0.3, size=(500, 9))), 3)
    items = [_image((16, 16), seed=i)[1] for i in range(8)]
    killed = []

    def kill_one(name, status, n_done, n_total):
        if not killed:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)                 # the Nanny starts a new worker
            killed.append(pid)

    run = reconstruct_many(items, functools.partial(_identity_factory, delay=0.4), prior,
                           0.1, store=tmp_path, options={"method": "hqs", "n_steps": 2},
                           client=client, callback=kill_one)
    assert killed and run.failed == {}
    names = [f"item_{i:05d}" for i in range(8)]
    assert sorted(run.written) == names
    assert sorted(os.listdir(tmp_path)) == [f"{n}.npy" for n in names]
    client.wait_for_workers(2, timeout=30)


# -- sharded KDE ---------------------------------------------------------------------------
def test_combine_shards_is_the_whole_kde():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 4))
    Q = np.vstack([rng.normal(size=(20, 4)), [[40.0, 0, 0, 0]]])   # one far query
    from fastscore._dask_kde import _fit_shard, _shard_terms
    terms = [_shard_terms(_fit_shard(part, 0.5, 1), Q) for part in np.array_split(X, 3)]
    score, log_density = combine_shards(Q, terms, len(X), 0.5)
    whole = GaussianKDE(0.5).fit(X)
    np.testing.assert_allclose(score, whole.score(Q), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(log_density, whole.log_density(Q), rtol=1e-12)


def test_sharded_kde_on_cluster(client):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5))
    Q = rng.normal(size=(64, 5))
    whole = GaussianKDE(0.7).fit(X)
    sharded = ShardedKDE(0.7, client=client).fit(X, n_shards=3)
    assert sharded.n_shards_ == 3 and sharded.n_points_ == 3000
    np.testing.assert_allclose(sharded.score(Q), whole.score(Q), rtol=1e-9, atol=1e-12)
    from_dask = ShardedKDE(0.7, client=client).fit(
        da.from_array(X.astype(np.float32), chunks=(700, 5)))
    assert from_dask.n_shards_ == 5
    np.testing.assert_allclose(from_dask.score(Q.astype(np.float32)),
                               GaussianKDE(0.7).fit(X.astype(np.float32)).score(
                                   Q.astype(np.float32)), rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="dtype"):
        sharded.score(Q.astype(np.float32))


def test_sharded_kde_is_a_patch_score_in_memory_and_in_block_tasks(client):
    # the patch-score protocol of KDEPatchScore (width sqrt(h² + σ²)), then MAP estimates
    # with it: on the client (map_estimate) and from inside Dask tasks (denoise_dask)
    single = _kde_score((3, 3))
    X = single._train
    sharded = ShardedKDE(0.05, client=client).fit(X, n_shards=3)
    Q = X[:40] + 0.1 * np.random.default_rng(2).standard_normal((40, 9))
    for sigma in (0.0, 0.1, 0.4):
        np.testing.assert_allclose(sharded.score(Q, sigma), single.score(Q, sigma),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(sharded.log_density(Q, sigma),
                                   single.log_density(Q, sigma), rtol=1e-12)
    q32 = Q.astype(np.float32)                  # patch-score calls cast the points, as
    np.testing.assert_allclose(sharded.score(q32, 0.1), single.score(q32, 0.1),  # it does
                               rtol=1e-4, atol=1e-3)
    _, y = _image((12, 10))
    want = map_estimate(y, Identity(y.shape), 0.1, PatchPrior(single, 3), method="hqs",
                        n_steps=2, tol=0).x
    prior = PatchPrior(sharded, 3)
    got = map_estimate(y, Identity(y.shape), 0.1, prior, method="hqs", n_steps=2, tol=0).x
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    chunked = denoise_dask(da.from_array(y, chunks=(6, 10)), prior, 0.1, n_steps=2)
    np.testing.assert_allclose(chunked.compute(), want, rtol=0, atol=1e-9)
    empirical = ShardedKDE(0.0, client=client).fit(X, n_shards=2)
    with pytest.raises(ValueError, match="bandwidth is 0"):
        empirical.score(Q, 0.0)


# -- command line --------------------------------------------------------------------------
@pytest.mark.slow          # the pretrained network reaches the workers once: ~15 s here
def test_cli_denoise_dask_equals_in_memory(client, tmp_path, capsys):
    from fastscore.cli import main

    _, y = _image((40, 36))
    np.save(tmp_path / "noisy.npy", y.astype(np.float32))
    address = client.scheduler.address
    common = [str(tmp_path / "noisy.npy"), "--sigma", "0.1", "--steps", "3", "-q"]
    assert main(["denoise", *common, "--out", str(tmp_path / "memory.npy"), "--levels",
                 "1"]) == 0
    capsys.readouterr()
    assert main(["denoise", *common[:-1], "--out", str(tmp_path / "dask.npy"), "--dask",
                 address, "--chunks", "16"]) == 0
    progress = capsys.readouterr().err.splitlines()          # chunks x steps block tasks
    assert re.match(r"hqs on dask: (\d+)/\1 tasks \(100%\)", progress[-1]), progress
    np.testing.assert_allclose(np.load(tmp_path / "dask.npy"),
                               np.load(tmp_path / "memory.npy"), rtol=0, atol=1e-4)
    capsys.readouterr()
    assert main(["denoise", *common, "--out", str(tmp_path / "p.npy"), "--dask", "local:0"]) == 2
    assert main(["denoise", *common, "--out", str(tmp_path / "p.npy"), "--dask", address,
                 "--method", "posterior"]) == 2
    assert main(["denoise", *common, "--out", str(tmp_path / "p.npy"), "--dask", address,
                 "--levels", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "local:N" in err[0] and "posterior" in err[1]
    assert "--levels" in err[2] and not os.path.exists(tmp_path / "p.npy")


def test_cli_reconstruct_many_reports_and_resumes(client, tmp_path, capsys):
    from fastscore.cli import main

    folder = tmp_path / "items"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"slice{i}.npy", _image((24, 24), seed=i)[1].astype(np.float32))
    np.save(folder / "broken.npy", np.zeros(7, dtype=np.float32))
    argv = ["reconstruct-many", str(folder), "--noise-sigma", "0.1", "--steps", "2",
            "--out", str(tmp_path / "out"), "--dask", client.scheduler.address]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert "failed broken" in out.out and "1 of 4 items failed" in out.err
    progress = [line for line in out.err.splitlines() if "tasks" in line]  # not a terminal:
    assert progress[-1].startswith("reconstruct-many: 4/4 tasks (100%)")  # plain lines
    assert len(progress) == 4 and "\r" not in out.err
    assert sorted(os.listdir(tmp_path / "out")) == [f"slice{i}.npy" for i in range(3)]
    (folder / "broken.npy").unlink()
    assert main(argv + ["-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(argv) == 0
    assert "0 written, 3 already present, 0 failed" in capsys.readouterr().out


def test_task_progress_terminal_and_plain_lines():
    import io

    from fastscore._progress import TaskProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    plain = io.StringIO()
    shown = TaskProgress("run", stream=plain)
    for done in range(1, 21):
        shown.update(done, 20, f"item{done}")
    lines = plain.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("run: 2/20 tasks (10%)")
    assert lines[-1].startswith("run: 20/20 tasks (100%)") and lines[-1].endswith("item20")
    terminal = Terminal()
    bar = TaskProgress("run", stream=terminal)
    bar.update(1, 3)
    bar.close()                                     # an interrupted run ends its line
    bar.update(3, 3)
    assert terminal.getvalue().count("\r") == 2 and terminal.getvalue().endswith("\n")
    off = io.StringIO()
    TaskProgress("run", enabled=False, stream=off).update(1, 1)
    assert off.getvalue() == ""


def _operators_of(argv_reconstruct, argv_many, y, tmp_path):
    """The operator `fastscore reconstruct` builds and the one reconstruct-many builds on a
    worker, from the same options."""
    from fastscore._cli_dask import _operator_options
    from fastscore._cli_operators import build_operator, image_shape_of
    from fastscore._cli_support import Console, read_image
    from fastscore.cli import build_parser

    console = Console(0)
    one = build_parser().parse_args(argv_reconstruct)
    single = build_operator(one, image_shape_of(one, y.shape), y.shape,
                            lambda path, what: read_image(path, what, console))
    np.save(tmp_path / "item.npy", y)
    many = build_parser().parse_args(argv_many)
    return single, _operator_options(many, console, str(tmp_path / "item.npy"))


@pytest.mark.parametrize("words", [["--operator", "inpaint", "--mask", "MASK"],
                                   ["--operator", "ct", "--angles", "9",
                                    "--image-shape", "12", "12"],
                                   ["--operator", "fanbeam", "--image-shape", "12", "12",
                                    "--source-distance", "30", "--detector-distance", "45",
                                    "--detector", "arc", "--scan-degrees", "200"],
                                   ["--operator", "blur", "--kernel", "KERNEL"],
                                   ["--operator", "superres", "--factor", "3"],
                                   ["--operator", "mri", "--mask", "MASK"]])
def test_reconstruct_many_builds_the_operators_of_reconstruct(words, client, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "mask.npy", (rng.random((12, 12)) < 0.6).astype(np.float32))
    np.save(tmp_path / "kernel.npy", np.outer([1.0, 2, 1], [1.0, 3, 1]) / 25)
    words = [str(tmp_path / "mask.npy") if w == "MASK" else
             str(tmp_path / "kernel.npy") if w == "KERNEL" else w for w in words]
    kind = words[1]
    shapes = {"ct": (9, 17), "fanbeam": (24, 20), "superres": (4, 4)}
    y = rng.standard_normal(shapes.get(kind, (12, 12)))
    if kind == "mri":
        y = y + 1j * rng.standard_normal(y.shape)
    single, factory = _operators_of(
        ["reconstruct", "--data", "d.npy", "--model", "m", "--noise-sigma", "0.1",
         "--out", "o.npy", *words],
        ["reconstruct-many", str(tmp_path), "--noise-sigma", "0.1", "--out", "o", *words],
        y, tmp_path)
    remote = client.submit(factory, "item", y).result()        # built on a worker
    assert type(remote) is type(single)
    x = rng.standard_normal((12, 12))                          # every image is 12 x 12
    np.testing.assert_array_equal(remote.forward(x), single.forward(x))


def test_reconstruct_many_option_errors_before_any_work(client, tmp_path, capsys):
    from fastscore.cli import main

    folder = tmp_path / "items"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((9, 17)))
    base = ["reconstruct-many", str(folder), "--noise-sigma", "0.1", "--out",
            str(tmp_path / "out"), "--dask", client.scheduler.address]
    assert main(base + ["--operator", "ct"]) == 2
    assert main(base + ["--operator", "inpaint"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "needs --image-shape" in err[0] and "needs --mask" in err[1]
    assert not (tmp_path / "out").exists()
