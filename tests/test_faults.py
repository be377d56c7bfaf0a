"""Training survives interruptions: Ctrl-C or a kill at any moment, then resume, gives the
weights of the uninterrupted run bit for bit and leaves no temporary file behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastscore
from fastscore import _atomic, optim, train
from fastscore.data import rectangles
from fastscore.io import read_model_file, write_model_file
from fastscore.train import fit_patch_score

TINY = dict(patch_size=3, n_steps=80, batch_size=32, warmup=5, validate_every=20,
            checkpoint_every=1, n_threads=1)


@pytest.fixture(scope="module")
def images():
    return rectangles(12, rng=0, dtype=np.float32)


def tiny_model():
    return fastscore.nn.NoiseConditionalScore.for_patches(3, hidden=(16, 16), rng=0,
                                                          n_threads=1)


def straight_run(images, seed):
    return fit_patch_score(images, rng=seed, model=tiny_model(), **TINY).net.params


def resume(images, seed, ckpt):
    return fit_patch_score(images, rng=seed, model=tiny_model(), checkpoint=ckpt,
                           resume=True, **TINY).net.params


def test_ctrl_c_during_a_step_resumes_bit_for_bit(images, tmp_path, monkeypatch):
    """Ctrl-C after a step's random draws, before its update: the step is not done, and
    the checkpoint's RNG state must be the one before those draws."""
    expected = straight_run(images, 7)
    ckpt = str(tmp_path / "ckpt.npz")
    real_loss, calls = train.ncsm, []

    def loss_interrupted_at_step_13(*args, **kwargs):
        calls.append(kwargs.get("grad", True))       # validation calls have grad=False
        if sum(calls) == 13:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train, "ncsm", loss_interrupted_at_step_13)
    with pytest.raises(KeyboardInterrupt):
        fit_patch_score(images, rng=7, model=tiny_model(), checkpoint=ckpt, **TINY)
    monkeypatch.undo()
    assert read_model_file(ckpt, "checkpoint")[1]["step"] == 12
    np.testing.assert_array_equal(resume(images, 7, ckpt), expected)


def test_ctrl_c_during_the_update_is_delivered_after_it(images, tmp_path, monkeypatch):
    """A SIGINT arriving inside the optimiser step is held until the step (optimiser, EMA,
    history) is complete: the interrupted run's checkpoint counts it as done."""
    expected = straight_run(images, 8)
    ckpt = str(tmp_path / "ckpt.npz")
    real_step = optim.Adam.step

    def step_with_signal(self, grad, step_size=None):
        if self.step_count == 20:
            signal.raise_signal(signal.SIGINT)      # a real Ctrl-C, mid-update
        return real_step(self, grad, step_size)

    monkeypatch.setattr(optim.Adam, "step", step_with_signal)
    # Python's own handler, even when started with SIGINT ignored (a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_patch_score(images, rng=8, model=tiny_model(), checkpoint=ckpt, **TINY)
    finally:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert read_model_file(ckpt, "checkpoint")[1]["step"] == 21
    np.testing.assert_array_equal(resume(images, 8, ckpt), expected)


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "model.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _atomic.temp_prefix(str(path)).rsplit("-", 1)[1]
    stale = tmp_path / f".model.npz.{dead.pid}-{host}abc123.tmp"
    alive = tmp_path / f".model.npz.{os.getpid()}-{host}def456.tmp"   # a write under way
    other = tmp_path / ".other.npz.1-00000000.abc.tmp"
    for f in (stale, alive, other):
        f.write_bytes(b"partial")
    write_model_file(str(path), "test", {"a": np.zeros(3)})
    assert not stale.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == \
        sorted([alive.name, other.name])


# ------------------------------------------------------------- kills in subprocesses

CHILD = textwrap.dedent("""
    import os
    import signal
    import sys
    import time
    import numpy as np
    import fastscore._atomic
    from fastscore.data import rectangles
    from fastscore.nn import NoiseConditionalScore
    from fastscore.train import fit_patch_score

    def report(step, info):
        print(step, flush=True)

    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignored

    def announced_write(path, write):      # say when a checkpoint is half written
        def slow(f):
            write(f)
            f.flush()
            print("writing", flush=True)
            time.sleep(0.01)
        return atomic_write(path, slow)

    atomic_write, fastscore._atomic.atomic_write = fastscore._atomic.atomic_write, announced_write
    images = rectangles(12, rng=0, dtype=np.float32)
    while True:      # after Ctrl-C, resume in the same process (a kill ends it)
        model = NoiseConditionalScore.for_patches(3, hidden=(16, 16), rng=0, n_threads=1)
        try:
            fit_patch_score(images, rng=9, model=model, checkpoint=sys.argv[1],
                            resume=os.path.exists(sys.argv[1]), callback=report,
                            **{tiny!r})
            break
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    print("done", flush=True)
""").format(tiny=TINY)


def kill_chain(tmp_path, sig, n_kills, seed):
    """Train in a subprocess that receives `sig` `n_kills` times, after a random number of
    steps: half of the times a random moment into the next step, half in the middle of a
    checkpoint write. A killed process is replaced by a new one resuming from the
    checkpoint; after SIGINT the same process resumes. Returns (checkpoint path, signals
    delivered, of them during a write)."""
    rng = np.random.default_rng(seed)
    ckpt = str(tmp_path / "ckpt.npz")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastscore.__file__)),
         os.environ.get("PYTHONPATH", "")]))
    delivered, in_write, child = 0, 0, None
    while delivered < n_kills:
        if child is None:
            child = subprocess.Popen([sys.executable, "-c", CHILD, ckpt], env=env, cwd=tmp_path,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        target, seen = int(rng.integers(1, 4)), 0    # steps to let it complete
        during_write = bool(rng.random() < 0.5)
        hit = False
        for line in child.stdout:
            token = line.strip()
            if token == "done":
                break
            seen += token.isdigit()
            if seen >= target and (token == "writing") == during_write:
                if not during_write:
                    time.sleep(rng.uniform(0, 0.004))   # anywhere in the next step
                child.send_signal(sig)
                hit = True
                break
        if not hit:                                 # finished first
            break
        if sig == signal.SIGINT:                    # received and handled, not lost
            for line in child.stdout:
                if line.strip() == "interrupted":
                    break
            else:
                pytest.fail(f"SIGINT number {delivered + 1} was not received")
        delivered += 1
        in_write += during_write
        if sig == signal.SIGKILL:
            child.wait()
            child = None
    if child is not None:
        child.stdout.read()
        assert child.wait() == 0
    return ckpt, delivered, in_write


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_training_resumes_bit_for_bit(images, tmp_path, sig):
    ckpt, delivered, in_write = kill_chain(tmp_path, sig, 20, seed=int(sig))
    assert delivered == 20 and in_write > 0
    np.testing.assert_array_equal(resume(images, 9, ckpt), straight_run(images, 9))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
