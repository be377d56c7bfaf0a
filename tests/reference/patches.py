"""Slow, obvious NumPy versions of patch gather and scatter.

gather: pad with ``numpy.pad`` and slice every patch out in a Python loop.
scatter: the transpose of the dense gather matrix, built column by column from gather
applied to unit images - correct by construction, for small images only.
"""

import itertools

import numpy as np

NUMPY_MODE = {"zero": "constant", "reflect": "reflect", "circular": "wrap"}


def padding_widths(image_shape, patch_shape, stride, padding, origin=None):
    """(before, after) per axis, same rule as fastscore: centred (or `origin` before),
    p//2 after, extended until the grid covers the image."""
    widths = []
    for a, (n, p, s) in enumerate(zip(image_shape, patch_shape, stride)):
        if padding == "valid":
            widths.append((0, 0))
            continue
        before = (p - 1) // 2 if origin is None else origin[a]
        after = p // 2
        while True:
            padded = n + before + after
            grid = (padded - p) // s + 1
            if (grid - 1) * s + p >= before + n:
                break
            after += 1
        widths.append((before, after))
    return widths


def gather(x, patch_shape, stride, padding, origin=None):
    """Rows of patches of one image, in C order of the patch corners."""
    widths = padding_widths(x.shape, patch_shape, stride, padding, origin)
    xp = x if padding == "valid" else np.pad(x, widths, mode=NUMPY_MODE[padding])
    grid = [(n - p) // s + 1 for n, p, s in zip(xp.shape, patch_shape, stride)]
    rows = []
    for corner in itertools.product(*[range(g) for g in grid]):
        sl = tuple(slice(c * s, c * s + p) for c, s, p in zip(corner, stride, patch_shape))
        rows.append(xp[sl].ravel())
    return np.array(rows, dtype=x.dtype).reshape(len(rows), int(np.prod(patch_shape)))


def gather_matrix(image_shape, patch_shape, stride, padding, origin=None):
    """Dense matrix M with gather(x).ravel() == M @ x.ravel() (float64)."""
    n = int(np.prod(image_shape))
    columns = []
    for k in range(n):
        e = np.zeros(n)
        e[k] = 1.0
        columns.append(gather(e.reshape(image_shape), patch_shape, stride, padding,
                              origin).ravel())
    return np.stack(columns, axis=1)


def scatter(patches, image_shape, patch_shape, stride, padding, origin=None):
    """Adjoint of gather: Mᵀ P."""
    M = gather_matrix(image_shape, patch_shape, stride, padding, origin)
    return (M.T @ patches.astype(np.float64).ravel()).reshape(image_shape).astype(patches.dtype)
