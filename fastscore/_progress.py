"""Progress reporting for long loops: tqdm when installed, else a plain bar on stderr."""

import sys
import time

__all__ = ["progress_range"]


def _plain(total, desc):
    start = time.perf_counter()
    width = 30
    for k in range(total):
        yield k
        done = k + 1
        if done == total or done % max(1, total // 50) == 0:
            filled = width * done // total
            elapsed = time.perf_counter() - start
            sys.stderr.write(f"\r{desc}: [{'#' * filled}{'.' * (width - filled)}] "
                             f"{done}/{total} {elapsed:.1f}s")
            sys.stderr.flush()
    sys.stderr.write("\n")


def progress_range(total, desc, enabled):
    """``range(total)``, shown as a progress bar when `enabled`."""
    if not enabled:
        return range(total)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _plain(total, desc)
    return tqdm(range(total), desc=desc, leave=False)
