"""Shared fixtures of the Python binding's tests (run by tests/cli/test_python.sh).

The package is used in place (python/ on sys.path) unless RETNET_TEST_INSTALLED
is set; the CLI is $RETNET or build/retnet. Everything runs on one thread: the
results compared bit for bit do not depend on it, and the machine is shared.
"""

import os
import subprocess
import sys

# before anything loads OpenMP or OpenBLAS (numpy may)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if not os.environ.get("RETNET_TEST_INSTALLED"):
    sys.path.insert(0, os.path.join(ROOT, "python"))

import retnet  # noqa: E402

CLI = os.environ.get("RETNET") or os.path.join(ROOT, "build", "retnet")
DIMS = dict(dim=32, layers=2, heads=2, vocab=256)
CLI_DIMS = ["--dim", "32", "--layers", "2", "--heads", "2", "--vocab", "256"]


def cli(*args, check=True, input=None):
    """Runs the retnet CLI; returns the CompletedProcess (stdout, stderr as bytes)."""
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, input=input, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"retnet {' '.join(map(str, args))} failed ({p.returncode}): "
                             f"{p.stderr.decode(errors='replace')}")
    return p


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small deterministic English-like text file."""
    path = tmp_path_factory.mktemp("data") / "text.txt"
    lines = []
    for i in range(1, 120):
        lines.append(f"The quick brown fox {i} jumps over the lazy dog. A retentive network keeps a state.")
        lines.append(f"She said that the {i % 7} rivers were cold in the morning, and the town was quiet.")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """preset -> path of a model written by `retnet init` (seed 5)."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for preset in retnet.PRESETS:
        p = d / f"{preset}.safetensors"
        cli("init", "--preset", preset, *CLI_DIMS, "--seed", 5, "--out", p)
        out[preset] = str(p)
    return out


@pytest.fixture
def tokens():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=37).astype(np.int32)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    retnet.set_threads(1)
