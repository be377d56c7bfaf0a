"""Many independent reconstructions on a Dask cluster (:func:`reconstruct_many`)."""

import dataclasses
import inspect
import os

import numpy as np

from ._optional import import_optional

__all__ = ["DatasetRun", "reconstruct_many"]


@dataclasses.dataclass
class DatasetRun:
    """What :func:`reconstruct_many` did.

    Attributes
    ----------
    store : str, the output directory (one ``<name>.npy`` per item)
    written : list of str, items reconstructed and written by this run, in finishing order
    skipped : list of str, items whose output already existed (not recomputed)
    failed : dict str -> str, items whose reconstruction raised: ``"ErrorType: message"``
    """
    store: str
    written: list
    skipped: list
    failed: dict

    def path(self, name):
        """The output file of item `name`."""
        return os.path.join(self.store, f"{name}.npy")


def _client(client):
    distributed = import_optional("distributed", "dask")
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"`client` must be a distributed.Client or None; got "
                            f"{type(client).__name__}.")
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError("no Dask client: pass `client=` (a distributed.Client) or create "
                         "one first, e.g. distributed.Client(n_workers=2).") from None


def _items(measurements):
    """(name, array or path) pairs; a sequence gets names item_00000, item_00001, …"""
    if isinstance(measurements, dict):
        pairs = [(str(k), v) for k, v in measurements.items()]
    elif isinstance(measurements, (list, tuple)):
        pairs = [(f"item_{i:05d}", v) for i, v in enumerate(measurements)]
    else:
        raise TypeError("`measurements` must be a dict {name: array or file path} or a "
                        f"list of them; got {type(measurements).__name__}.")
    for name, _ in pairs:
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise ValueError(f"item names must be plain file names; got {name!r}.")
    return pairs


def _map_options():
    """The keyword-only options of map_estimate a dataset run may set."""
    from .reconstruct import map_estimate

    return [name for name, p in inspect.signature(map_estimate).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in ("callback", "progress")]


def _reconstruct_item(name, item, operator_factory, prior, noise_sigma, options, path):
    """Worker side: load, build the operator, MAP estimate, write atomically."""
    from .io import load_array, load_image, save_array
    from .reconstruct import map_estimate

    if isinstance(item, (str, os.PathLike)):
        item = os.fspath(item)
        y = load_array(item) if item.endswith((".npy", ".npz")) else load_image(item)
    else:
        y = np.asarray(item)
    operator = operator_factory(name, y)
    result = map_estimate(y, operator, noise_sigma, prior, **options)
    save_array(path, result.x)
    return name


def reconstruct_many(measurements, operator_factory, prior, noise_sigma, *, store,
                     options=None, client=None, callback=None):
    """MAP reconstructions of many measurements on a Dask cluster, written as they finish.

    Each item is ``x = map_estimate(y, operator_factory(name, y), noise_sigma, prior,
    **options).x``, one task per item; the prior is scattered to every worker once (not
    pickled into each task) and each worker writes its result to ``store/<name>.npy``
    (atomically: a temporary file renamed into place, so an output file is always complete).
    A run is restartable: items whose output exists are skipped. An item that raises is
    reported in :attr:`DatasetRun.failed`; the others go on. A worker that dies mid-task
    (its Nanny restarts it) has its tasks rerun elsewhere by the scheduler.

    Parameters
    ----------
    measurements : dict {name: ndarray or path} or list
        Measurements ``y`` (each the shape the operator expects); a path (``.npy``,
        ``.npz`` or an image file) is read on the worker. A list names its items
        ``item_00000``, ``item_00001``, …
    operator_factory : callable (name, y) -> fastscore.operators.LinearOperator
        Picklable (a module-level function or a ``functools.partial``).
    prior : image prior (e.g. :class:`fastscore.prior.PatchPrior`)
    noise_sigma : float > 0
    store : str or os.PathLike
        Output directory (created), on a file system every worker can write.
    options : dict, optional
        Keyword arguments of :func:`fastscore.map_estimate` (``method``, ``n_steps``,
        ``sigma_schedule``, ``rng``, …).
    client : distributed.Client, optional
        Default: the current client.
    callback : callable(name, status, n_done, n_total), optional
        Called on the client as each item finishes, ``status`` "written" or "failed".

    Returns
    -------
    DatasetRun
    """
    distributed = import_optional("distributed", "dask")
    client = _client(client)
    if not callable(operator_factory):
        raise TypeError("`operator_factory` must be callable (name, y) -> LinearOperator; "
                        f"got {type(operator_factory).__name__}.")
    options = dict(options or {})
    allowed = _map_options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"`options` takes keywords of map_estimate {allowed}; "
                         f"got unknown {unknown}.")
    pairs = _items(measurements)
    store = os.path.abspath(os.fspath(store))
    os.makedirs(store, exist_ok=True)
    run = DatasetRun(store=store, written=[], skipped=[], failed={})
    todo = []
    for name, item in pairs:
        if os.path.exists(run.path(name)):
            run.skipped.append(name)
        else:
            todo.append((name, item))
    if not todo:
        return run
    prior_future = client.scatter(prior, broadcast=True, hash=False)
    futures = {}
    for name, item in todo:
        future = client.submit(_reconstruct_item, name, item, operator_factory, prior_future,
                               noise_sigma, options, run.path(name), pure=False,
                               key=f"fastscore-item-{name}-{os.urandom(4).hex()}")
        futures[future] = name
    n_done = 0
    for future in distributed.as_completed(list(futures)):
        name = futures[future]
        if future.status == "error":
            exc = future.exception()
            run.failed[name] = f"{type(exc).__name__}: {exc}"
            status = "failed"
        else:
            run.written.append(name)
            status = "written"
        n_done += 1
        if callback is not None:
            callback(name, status, n_done, len(todo))
    del prior_future
    return run

