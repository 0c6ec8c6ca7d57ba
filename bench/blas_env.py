"""Same BLAS kernels for PyTorch as for retnet, for the side-by-side scripts.

Debian's PyTorch calls OpenBLAS (libblas.so.3 is a wrapper of libopenblas.so.0).
OpenBLAS 0.3.21 (Debian 12) does not know Intel's newest server cores and falls
back to its Prescott (SSE3) kernels there; libretnet then picks the kernels by the
CPU's instruction set (src/ops.c, pick_core). PyTorch must get the same
choice, and OpenBLAS reads OPENBLAS_CORETYPE once, when it loads: so
`ensure_same_blas()` re-executes the script with the variable set before torch is
imported. A core the user chose (OPENBLAS_CORETYPE already set) is kept. For a
script that only trains, the same re-execution sets OMP_WAIT_POLICY=passive, as
`retnet train` sets it for itself.
Also the machine's load, which both scripts print beside their figures.
"""

import ctypes
import os
import sys


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core():
    """The kernels OpenBLAS chose in a fresh process (None without OpenBLAS)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return None
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def _blas_line():
    if "OPENBLAS_CORETYPE" in os.environ:
        return "OpenBLAS, OPENBLAS_CORETYPE=%s (both)" % os.environ["OPENBLAS_CORETYPE"]
    core = openblas_core()
    if core != "Prescott":
        return "OpenBLAS (%s kernels, both)" % core if core else "BLAS: not OpenBLAS"
    flags = _cpu_flags()
    pick = None
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        pick = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        pick = "Haswell"
    if not pick:
        return "OpenBLAS (Prescott kernels, both)"
    return pick


def ensure_same_blas(passive=False):
    """Re-executes this script with OPENBLAS_CORETYPE as libretnet would pick it and,
    with passive, with OpenMP's threads waiting passively (OMP_WAIT_POLICY=passive)
    as `retnet train` runs them unless the user chose a policy: PyTorch's OpenMP reads
    it when it loads, so both sides wait the same way (decoding, which retnet runs
    with libgomp's default, is left so). Returns a line describing the BLAS and the
    wait policy both sides run."""
    line = _blas_line()
    env = dict(os.environ)
    if line in ("SkylakeX", "Haswell"):
        env["OPENBLAS_CORETYPE"] = line
    if passive and "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["OMP_WAIT_POLICY"] = "passive"
    if env != os.environ:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if "OMP_WAIT_POLICY" in os.environ:
        policy = "OMP_WAIT_POLICY=%s (both)" % os.environ["OMP_WAIT_POLICY"]
    elif "GOMP_SPINCOUNT" in os.environ:
        policy = "GOMP_SPINCOUNT=%s (both)" % os.environ["GOMP_SPINCOUNT"]
    else:
        policy = "OMP_WAIT_POLICY unset (retnet train waits passively all the same)"
    return "%s; %s" % (line, policy)


def load_average():
    """The 1-minute load average (a busy machine slows both sides, OpenMP's spinning
    threads the more), or "?"."""
    try:
        return "%.1f" % os.getloadavg()[0]
    except OSError:
        return "?"
