"""The sdist carries everything the build needs (checked on MANIFEST.in and pyproject.toml,
without building), and the installed package has its compiled modules and package data."""

import os
import re

import pytest

import fastscore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_TREE = os.path.isfile(os.path.join(ROOT, "MANIFEST.in"))


def manifest_files():
    """Files of the source tree that MANIFEST.in puts in the sdist."""
    from setuptools._distutils.filelist import FileList

    files = FileList()
    files.findall(ROOT)
    files.allfiles = [os.path.relpath(p, ROOT) for p in files.allfiles]
    with open(os.path.join(ROOT, "MANIFEST.in")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                files.process_template_line(line)
    return {os.path.relpath(p, ROOT).replace(os.sep, "/") for p in files.files}


@pytest.mark.skipif(not SOURCE_TREE, reason="needs the source tree (MANIFEST.in)")
def test_sdist_holds_every_build_input():
    files = manifest_files()
    ext = os.path.join(ROOT, "fastscore", "_ext")
    needed = {"setup.py", "pyproject.toml", "README.md", "LICENSE"}
    for name in os.listdir(os.path.join(ROOT, "csrc")):
        if name.endswith((".c", ".h")):
            needed.add(f"csrc/{name}")
    for name in os.listdir(ext):
        if name.endswith((".pyx", ".pxd")):
            needed.add(f"fastscore/_ext/{name}")
            with open(os.path.join(ext, name)) as f:      # include "x.pxi" / cimport ._x
                text = f.read()
            for inc in re.findall(r'^include\s+"([^"]+)"', text, re.M):
                needed.add(f"fastscore/_ext/{inc}")
            for mod in re.findall(r'^from\s+\.(\w+)\s+cimport', text, re.MULTILINE):
                needed.add(f"fastscore/_ext/{mod}.pxd")
    needed.add("fastscore/py.typed")
    needed |= {f"fastscore/_ext/{n}" for n in os.listdir(ext) if n.endswith(".pyi")}
    missing = sorted(needed - files)
    assert not missing, f"MANIFEST.in leaves out {missing}"
    assert not [f for f in files if f.endswith((".so", ".pyd"))]


@pytest.mark.skipif(not SOURCE_TREE, reason="needs the source tree (pyproject.toml)")
def test_package_data_patterns():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    assert '"*.pxd"' in text                    # _csrc.pxd, _common.pxd for a rebuild
    assert '"pretrained/*.npz"' in text and '"pretrained/*.json"' in text
    assert '"py.typed"' in text and '"*.pyi"' in text     # PEP 561: the wheel is typed


def test_installed_package_is_complete():
    from fastscore._ext import _common, adam, kde, mlp, patches  # noqa: F401

    here = os.path.dirname(fastscore.__file__)
    for pxd in ("_csrc.pxd", "_common.pxd"):
        assert os.path.isfile(os.path.join(here, "_ext", pxd)), pxd
    # typed (PEP 561), with stubs for every compiled extension
    assert os.path.isfile(os.path.join(here, "py.typed"))
    compiled = {n.split(".")[0] for n in os.listdir(os.path.join(here, "_ext"))
                if n.endswith((".so", ".pyd"))}
    assert {"_common", "adam", "kde", "mlp", "patches"} <= compiled
    missing = sorted(n for n in compiled
                     if not os.path.isfile(os.path.join(here, "_ext", n + ".pyi")))
    assert not missing, f"compiled modules without a .pyi stub: {missing}"
    assert fastscore.openmp_enabled() in (True, False)
