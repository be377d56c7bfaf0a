"""Forward models and the TV baseline: fastscore against SciPy / NumPy / scikit-image.

Times ``forward`` and ``adjoint`` of every operator (median ms) against the obvious
alternative (``scipy.ndimage.convolve`` for blur, ``numpy.fft`` for MRI,
``skimage.transform.radon`` / unfiltered ``iradon`` for CT when installed), the CT matrix
build and FBP (accuracy on a disk phantom next to skimage's ``iradon``), and TV denoising
(time, relative objective gap to the converged minimiser and PSNR, against
``skimage.restoration.denoise_tv_chambolle`` at its defaults and run longer). Ratios are baseline time /
fastscore time (> 1: fastscore is faster). Everything here is NumPy/SciPy code: one thread.

    python benchmarks/bench_operators.py            # 128² and 256²
    python benchmarks/bench_operators.py --quick    # 64², for CI
"""

import time

import numpy as np
import scipy.ndimage

from _timing import Table, header, measure, parser, try_import

from fastscore.operators import (MRI, Blur, Downsample, ParallelBeamCT, cartesian_mask,
                                 gaussian_kernel)
from fastscore.tv import total_variation, tv_denoise


def disk_phantom(n):
    yy, xx = np.mgrid[:n, :n] + 0.5 - n / 2
    disk = lambda cx, cy, r: ((xx - cx) ** 2 + (yy - cy) ** 2 < (r * n) ** 2).astype(float)
    return disk(0, 0, 0.38) + 0.5 * disk(0.08 * n, -0.1 * n, 0.12) - 0.3 * disk(
        -0.12 * n, 0.06 * n, 0.08)


def ms(fn, quick):
    return 1e3 * measure(fn, repeat=3 if quick else 7)[0]


def row(table, case, dtype, baseline_name, baseline_fn, ours_fn, quick):
    ours = ms(ours_fn, quick)
    if baseline_fn is None:
        table.add(case, np.dtype(dtype).name, baseline_name, "-", f"{ours:.2f}", "-")
        return
    base = ms(baseline_fn, quick)
    table.add(case, np.dtype(dtype).name, baseline_name, f"{base:.2f}", f"{ours:.2f}",
              f"{base / ours:.2f}")


def operator_table(sizes, quick, skimage):
    table = Table(["case", "dtype", "baseline", "baseline ms", "fastscore ms", "ratio"])
    transform = skimage.transform if skimage else None
    for n in sizes:
        for dtype in (np.float32, np.float64):
            x = disk_phantom(n).astype(dtype)
            k = gaussian_kernel(2.0).astype(dtype)          # 13 x 13
            for boundary, mode in (("periodic", "wrap"), ("zero", "constant")):
                A = Blur(k, x.shape, boundary)
                row(table, f"blur {boundary} {n}² k=13² fwd", dtype, "ndimage.convolve",
                    lambda: scipy.ndimage.convolve(x, k, mode=mode), lambda: A.forward(x), quick)
                row(table, f"blur {boundary} {n}² k=13² adj", dtype, "-", None,
                    lambda: A.adjoint(x), quick)
            D = Downsample(x.shape, 4)
            y = D.forward(x)
            row(table, f"downsample {n}² /4 fwd", dtype, "-", None, lambda: D.forward(x), quick)
            row(table, f"downsample {n}² /4 adj", dtype, "-", None, lambda: D.adjoint(y), quick)
            M = MRI(cartesian_mask(x.shape, 4, 0.08, rng=0))
            mask = M.mask
            kspace = M.forward(x)
            row(table, f"mri {n}² 4x fwd", dtype, "np.fft",
                lambda: np.fft.fftshift(np.fft.fft2(x, norm="ortho")) * mask,
                lambda: M.forward(x), quick)
            row(table, f"mri {n}² 4x adj", dtype, "np.fft",
                lambda: np.fft.ifft2(np.fft.ifftshift(kspace * mask), norm="ortho").real,
                lambda: M.adjoint(kspace), quick)
            C = ParallelBeamCT(x.shape, 180)
            sinogram = C.forward(x)
            theta = np.degrees(C.angles)
            row(table, f"ct {n}² 180 views fwd", dtype, "skimage radon",
                (lambda: transform.radon(x, theta)) if transform else None,
                lambda: C.forward(x), quick)
            row(table, f"ct {n}² 180 views adj", dtype, "skimage iradon(None)",
                (lambda: transform.iradon(sinogram.T, theta, filter_name=None))
                if transform else None, lambda: C.adjoint(sinogram), quick)
            row(table, f"ct {n}² 180 views fbp", dtype, "skimage iradon",
                (lambda: transform.iradon(sinogram.T, theta)) if transform else None,
                lambda: C.fbp(sinogram), quick)
    return table


def ct_table(sizes, skimage):
    """Build cost and FBP error inside the inscribed circle (skimage's iradon zeroes the
    outside by default; each FBP gets its own projector's sinogram)."""
    table = Table(["image", "views", "build s", "nonzeros", "MB", "fbp rel. error",
                   "skimage radon+iradon rel. error"])
    for n in sizes:
        x = disk_phantom(n)
        yy, xx = np.mgrid[:n, :n] + 0.5 - n / 2
        circle = xx ** 2 + yy ** 2 <= (n / 2) ** 2
        error = lambda r: np.linalg.norm((r - x)[circle]) / np.linalg.norm(x[circle])
        for views in (30, 180):
            t0 = time.perf_counter()
            C = ParallelBeamCT(x.shape, views)
            build = time.perf_counter() - t0
            nbytes = C.matrix.data.nbytes + C.matrix.indices.nbytes + C.matrix.indptr.nbytes
            ours = error(C.fbp(C.forward(x)))
            theirs = "-"
            if skimage:
                theta = np.degrees(C.angles)
                r = skimage.transform.iradon(skimage.transform.radon(x, theta), theta)
                theirs = f"{error(r):.4f}"
            table.add(f"{n}²", views, f"{build:.2f}", C.matrix.nnz, f"{nbytes / 1e6:.0f}",
                      f"{ours:.4f}", theirs)
    return table


def tv_table(sizes, quick, skimage):
    table = Table(["image", "dtype", "weight", "contender", "ms", "objective gap", "PSNR dB"])
    for n in sizes:
        clean = disk_phantom(n)
        peak = np.ptp(clean)
        for dtype in (np.float32, np.float64):
            y = (clean + 0.1 * np.random.default_rng(0).normal(size=clean.shape)).astype(dtype)
            for weight in (0.05, 0.2):
                objective = lambda x: (0.5 * np.sum((x.astype(float) - y) ** 2)
                                       + weight * total_variation(x.astype(float)))
                best = objective(tv_denoise(y.astype(float), weight, n_steps=5000, tol=0))
                contenders = [
                    ("fastscore tv_denoise (default tol 1e-5)", lambda: tv_denoise(y, weight)),
                    ("fastscore tv_denoise tol=1e-3", lambda: tv_denoise(y, weight, tol=1e-3))]
                if skimage:
                    chambolle = skimage.restoration.denoise_tv_chambolle
                    contenders += [
                        ("skimage chambolle (default: eps 2e-4, 200 it)",
                         lambda: chambolle(y, weight=weight)),
                        ("skimage chambolle eps=1e-7, 2000 it",
                         lambda: chambolle(y, weight=weight, eps=1e-7, max_num_iter=2000))]
                for name, fn in contenders:
                    x = fn()
                    gap = (objective(x) - best) / abs(best)
                    psnr = 10 * np.log10(peak ** 2 / np.mean((x - clean) ** 2))
                    seconds = measure(fn, repeat=3, warmup=0)[0]
                    table.add(f"{n}²", np.dtype(dtype).name, weight, name,
                              f"{1e3 * seconds:.1f}", f"{gap:.1e}", f"{psnr:.2f}")
    return table


def main():
    args = parser(__doc__).parse_args()
    sizes = [64] if args.quick else [128, 256]
    skimage = try_import("skimage")
    if skimage:
        import skimage.restoration  # noqa: F401  (submodules are lazy)
        import skimage.transform  # noqa: F401
    print(header("operators: forward / adjoint / FBP / TV", threads="1 (NumPy/SciPy code)",
                 skimage=getattr(skimage, "__version__", "not installed")))
    print("\n## forward and adjoint (median ms)\n")
    print(operator_table(sizes, args.quick, skimage).render())
    print("\n## CT system matrix and FBP (disk phantom, ramp filter, error inside the "
          "inscribed circle)\n")
    print(ct_table(sizes, skimage).render())
    print("\n## TV denoising (σ = 0.1 disk phantom)\n")
    print(tv_table(sizes, args.quick, skimage).render())


if __name__ == "__main__":
    main()
