"""Progress reporting for long loops: tqdm when installed, else a plain bar on stderr; and
progress over the tasks of a cluster (:class:`TaskProgress`)."""

import sys
import time

__all__ = ["progress_range", "TaskProgress"]


def _bar(desc, done, total, elapsed, width=30):
    filled = width * done // max(total, 1)
    return (f"{desc}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{elapsed:.1f}s")


def _plain(total, desc):
    start = time.perf_counter()
    for k in range(total):
        yield k
        done = k + 1
        if done == total or done % max(1, total // 50) == 0:
            sys.stderr.write("\r" + _bar(desc, done, total, time.perf_counter() - start))
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


class TaskProgress:
    """Progress over tasks that finish in any order, on `stream` (default stderr).

    On a terminal a bar redrawn in place; otherwise (a log file, a pipe) one plain line
    ``desc: done/total tasks (p%) t s`` per tenth of the work and at the end. Nothing when
    not `enabled`.

    Parameters
    ----------
    desc : str
    enabled : bool
    stream : file, optional
    """

    def __init__(self, desc, *, enabled=True, stream=None):
        self.desc = desc
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self.start = time.perf_counter()
        self._shown = 0
        self._open = False

    def update(self, done, total, note=""):
        """`done` of `total` tasks have finished (`note`: shown on the plain lines)."""
        if not self.enabled or total <= 0:
            return
        elapsed = time.perf_counter() - self.start
        if self.terminal:
            self.stream.write("\r" + _bar(self.desc, done, total, elapsed))
            self._open = done < total
            if not self._open:
                self.stream.write("\n")
        else:
            tenth = 10 * done // total
            if tenth <= self._shown and done < total:
                return
            self._shown = 10 if done >= total else tenth
            extra = f" {note}" if note else ""
            self.stream.write(f"{self.desc}: {done}/{total} tasks ({100 * done // total}%) "
                              f"{elapsed:.1f}s{extra}\n")
        self.stream.flush()

    def close(self):
        """End an unfinished bar's line (an interrupted or failed run)."""
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
