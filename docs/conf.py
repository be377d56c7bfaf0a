"""Sphinx configuration of the fastscore documentation.

Build (from the repository root, with the compiled extensions built in place or fastscore
installed, and the ``docs`` extra)::

    python -m sphinx -W docs docs/_build/html

The compiled extensions (``fastscore._ext``) are mocked, so the documentation builds from
a clone without compiling anything. The reference pages (one per public module) and the
examples page are written at every build into ``docs/generated/`` from the package and
from ``examples/``, so a new module or example is documented without editing these files.
"""

import ast
import os
import pkgutil
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
sys.path.insert(0, ROOT)

from sphinx.ext.autodoc.mock import mock  # noqa: E402

autodoc_mock_imports = ["fastscore._ext"]
with mock(autodoc_mock_imports):
    import fastscore

project = "fastscore"
author = "fastscore developers"
copyright = "fastscore developers"
release = fastscore.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# conventions.rst is built through generated/conventions.rst (see write_conventions)
exclude_patterns = ["_build", "conventions.rst"]
templates_path: list[str] = []

html_theme = "pydata_sphinx_theme"
html_title = f"fastscore {release}"
html_theme_options = {"navigation_with_keys": False}
html_show_sourcelink = False

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"     # in the signatures; the prose is numpydoc's
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3
# benchmarks/README.md is a lab notebook: its headings skip levels
suppress_warnings = ["myst.header"]

# ----------------------------------------------------------------------------------------
# Generated pages
# ----------------------------------------------------------------------------------------
GENERATED = os.path.join(DOCS, "generated")


def _write(name, text):
    """Write docs/generated/<name> when its text changed (keeps incremental builds)."""
    os.makedirs(GENERATED, exist_ok=True)
    path = os.path.join(GENERATED, name)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _title(text, char="="):
    return f"{text}\n{char * len(text)}\n"


def public_modules():
    """Names of fastscore's public modules (no leading underscore), sorted."""
    names = ["fastscore." + m.name for m in pkgutil.iter_modules(fastscore.__path__)
             if not m.name.startswith("_")]
    return sorted(names)


def _home(obj):
    """The public module that defines `obj` (where it is documented), or None."""
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("fastscore.") or any(
            part.startswith("_") for part in module.split(".")[1:]):
        return None             # defined in a private module: documented where exported
    return module


def module_page(name):
    """One reference page: a summary table of __all__, then every public name (names
    another public module defines are linked to its page, not documented twice)."""
    module = __import__(name, fromlist=["__all__"])
    names = [n for n in getattr(module, "__all__", []) if not n.startswith("_")]
    text = _title(f"``{name}``") + "\n"
    text += f".. automodule:: {name}\n   :no-members:\n\n"
    elsewhere = [(n, _home(getattr(module, n))) for n in names
                 if _home(getattr(module, n)) not in (None, name)]
    names = [n for n in names if n not in dict(elsewhere)]
    if elsewhere:
        text += "Also available here (documented with the module that defines them):\n\n"
        text += "".join(f"- ``{name}.{n}``: :obj:`{home}.{n}`\n" for n, home in elsewhere)
        text += "\n"
    if names:
        text += ".. currentmodule:: " + name + "\n\n.. autosummary::\n\n"
        text += "".join(f"   {n}\n" for n in names) + "\n"
        for n in names:
            obj = getattr(module, n)
            kind = "autoclass" if isinstance(obj, type) else (
                "autofunction" if callable(obj) else "autodata")
            text += f".. {kind}:: {n}\n"
            if kind == "autodata":
                text += "   :no-value:\n"
            text += "\n"
    return text


def write_reference():
    modules = public_modules()
    index = _title("Reference") + (
        "\nOne page per public module; each lists every name in the module's "
        "``__all__``. The package itself exports the thread settings and, imported on "
        "first use, the main classes:\n\n"
        ".. currentmodule:: fastscore\n\n"
        ".. autofunction:: set_num_threads\n.. autofunction:: get_num_threads\n"
        ".. autofunction:: show_config\n.. autofunction:: openmp_enabled\n\n"
        ".. toctree::\n   :maxdepth: 1\n\n")
    for name in modules:
        short = name.split(".", 1)[1]
        _write(f"{short}.rst", module_page(name))
        index += f"   {short}\n"
    _write("reference.rst", index)


def write_examples():
    folder = os.path.join(ROOT, "examples")
    scripts = sorted(f for f in os.listdir(folder) if f.endswith(".py"))
    text = _title("Examples") + (
        "\nShort scripts in ``examples/`` of the repository; each prints its numbers and "
        "writes a figure. Run them from the repository root, e.g. "
        "``python examples/langevin_mixture.py``.\n\n")
    for script in scripts:
        with open(os.path.join(folder, script), encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        summary = doc.partition("\n")[0]
        text += _title(f"``{script}``", "-") + "\n" + summary + "\n\n"
        figure = os.path.splitext(script)[0] + ".png"       # its figure, when recorded
        if os.path.isfile(os.path.join(DOCS, figure)):
            text += f".. image:: ../{figure}\n   :alt: {summary}\n\n"
        text += f".. literalinclude:: ../../examples/{script}\n   :language: python\n\n"
    _write("examples.rst", text)


def write_conventions():
    """The API conventions page: docs/conventions.rst, or a placeholder while it is not
    written yet (the toctree names generated/conventions either way)."""
    if os.path.isfile(os.path.join(DOCS, "conventions.rst")):
        text = ".. include:: ../conventions.rst\n"
    else:
        text = _title("API conventions") + (
            "\nThe table of the API conventions (names, ``rng``, callbacks, dtypes) goes "
            "in ``docs/conventions.rst``, which this page includes once it exists.\n")
    _write("conventions.rst", text)


with mock(autodoc_mock_imports):
    write_reference()
write_examples()
write_conventions()
