"""Lazy import of optional dependencies, with an error that names the pip extra."""

import importlib

__all__ = ["import_optional"]


def import_optional(name, extra):
    """Import module `name`; if missing, raise ``ImportError`` naming ``fastscore[extra]``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"this feature needs the optional package '{name.split('.')[0]}'; "
            f"install it with: pip install 'fastscore[{extra}]'") from exc
