"""What each SIMD body of the built kernels holds: FMA and vector width, from objdump.

Disassembles the compiled extensions (``objdump -d``, the in-place build by default) and,
for every function stamped per SIMD level (names ``<name>_f32_v4``, ``..._v3``,
``..._base``, and the packed GEMM's ``gemm_v4_f32`` ..., with GCC's ``.constprop`` /
``.part`` pieces added to their function),
counts its instructions, the fused multiply-adds (``vfmadd*``, ``vfmsub*``, ``vfnmadd*``,
``vfnmsub*``) and the instructions that touch zmm (512-bit), ymm (256-bit) and only xmm
registers. Prints one markdown table and, below it, the bodies that look wrong:

- a v3 or v4 body with multiplies followed by adds but no FMA (a target without FMA, as
  GCC's plain ``avx2`` target was; not flagged for adam, built with -ffp-contract=off on
  purpose);
- a v4 body of an explicitly 64-byte-vector kernel (the KDE) with no zmm instruction, or a
  v3 body with zmm instructions (an illegal instruction on an AVX2 CPU).

A body missing from the table was inlined into its caller (the baseline bodies can be).

    python benchmarks/check_isa.py                      # the in-place build
    python benchmarks/check_isa.py --dir build/lib.*/fastscore/_ext
"""

import argparse
import glob
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSIONS = ("kde", "patches", "mlp", "adam")
BODY = re.compile(r"^(?P<name>\w+?)_(?P<type>f32|f64)_(?P<level>v4|v3|base)(?:\.\w+)*$")
# the MLP's packed GEMM stamps its micro-kernels as <name>_v4_f32 (csrc/mlp_gemm.tmpl.c)
BODY_ISA_FIRST = re.compile(r"^(?P<name>\w+?)_(?P<level>v4|v3)_(?P<type>f32|f64)(?:\.\w+)*$")
FUNC = re.compile(r"^[0-9a-f]+ <(?P<sym>[^>]+)>:$")
FMA = re.compile(r"\bvf(?:n?madd|n?msub|maddsub|msubadd)\w*")
MUL = re.compile(r"\bv?mul[sp][sd]\b")
ADD = re.compile(r"\bv?(?:add|sub)[sp][sd]\b")
# kernels with explicitly sized vector types: their v4 body must use zmm
EXPLICIT_64B = ("kde",)
NO_FMA_ON_PURPOSE = ("adam",)


def disassemble(path):
    """{symbol: [instruction text]} of one shared object."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], check=True,
                         capture_output=True, text=True).stdout
    funcs, current = {}, None
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            current = funcs.setdefault(m.group("sym"), [])
        elif current is not None and line.startswith(" ") and "\t" in line:
            current.append(line.split("\t", 1)[1].strip())
    return funcs


def count(insns):
    c = {"insns": len(insns), "fma": 0, "mul": 0, "add": 0, "zmm": 0, "ymm": 0, "xmm": 0}
    for ins in insns:
        c["fma"] += bool(FMA.search(ins))
        c["mul"] += bool(MUL.search(ins))
        c["add"] += bool(ADD.search(ins))
        if "%zmm" in ins:
            c["zmm"] += 1
        elif "%ymm" in ins:
            c["ymm"] += 1
        elif "%xmm" in ins:
            c["xmm"] += 1
    return c


def bodies(ext_dir):
    """{(extension, function, type, level): counts} over the compiled extensions."""
    rows = {}
    for ext in EXTENSIONS:
        found = glob.glob(os.path.join(ext_dir, f"{ext}.*.so"))
        if not found:
            sys.exit(f"check_isa: no compiled {ext} in {ext_dir} (build it first)")
        merged = defaultdict(list)
        for sym, insns in disassemble(found[0]).items():
            m = BODY.match(sym) or BODY_ISA_FIRST.match(sym)
            if m:
                merged[(ext, m.group("name"), m.group("type"), m.group("level"))] += insns
        rows.update({key: count(insns) for key, insns in merged.items()})
    return rows


def problems(rows):
    bad = []
    for (ext, name, typ, level), c in sorted(rows.items()):
        where = f"{ext} {name}_{typ}_{level}"
        if (level in ("v3", "v4") and ext not in NO_FMA_ON_PURPOSE and c["fma"] == 0
                and c["mul"] and c["add"]):
            bad.append(f"{where}: multiplies and adds but no FMA")
        if level == "v4" and ext in EXPLICIT_64B and c["zmm"] == 0:
            bad.append(f"{where}: 64-byte vectors but no zmm instruction")
        if level != "v4" and c["zmm"]:
            bad.append(f"{where}: zmm instructions outside the AVX-512 body")
    return bad


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=os.path.join(ROOT, "fastscore", "_ext"),
                   help="folder of the compiled extensions (default: the in-place build)")
    args = p.parse_args()
    rows = bodies(glob.glob(args.dir)[0] if glob.glob(args.dir) else args.dir)
    order = {"v4": 0, "v3": 1, "base": 2}
    print("| extension | function | type | body | instructions | FMA | zmm | ymm | "
          "xmm or scalar |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(rows, key=lambda k: (k[0], k[1], k[2], order[k[3]])):
        c = rows[key]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {c['insns']} | {c['fma']} | "
              f"{c['zmm']} | {c['ymm']} | {c['xmm']} |")
    bad = problems(rows)
    print("\n" + ("\n".join(f"- {b}" for b in bad) if bad else "no problem found"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
