"""retnet: Retentive Networks (RetNet) from Python, over libretnet.so.

A ctypes binding of the C library (include/retnet.h): load, initialise and
save models in every format the CLI reads and writes, compute logits in the
three paradigms with states carried across calls, generate, score and train
from NumPy arrays; ``retnet.torch`` adds the library's retention as a PyTorch
autograd function.

    import retnet
    model = retnet.Model.load("model.safetensors")
    print(model.complete("Once upon a time", max_tokens=64, seed=1))
"""

from . import _lib
from .errors import (ArgumentError, Error, FileError, FormatError, Interrupted, NoMemoryError, NumericError,
                     error_class)
from .model import DTYPES, FORMATS, MODES, PRESETS, Config, Model, Score, Session, State
from .tokenizer import Tokenizer
from .train import Dataset, Rng, StepInfo, TrainConfig, Trainer

__version__ = "0.2.0"

__all__ = ["Model", "Config", "State", "Session", "Score", "Tokenizer", "Trainer", "TrainConfig", "StepInfo",
           "Dataset", "Rng", "Error", "NoMemoryError", "FileError", "FormatError", "ArgumentError", "NumericError",
           "Interrupted", "error_class", "version", "library_path", "set_threads", "get_threads",
           "PRESETS", "MODES", "FORMATS", "DTYPES"]


def version() -> str:
    """The loaded library's version (rn_version)."""
    return _lib.lib().rn_version().decode()


def library_path() -> str:
    """The path of the loaded libretnet.so."""
    return _lib.lib().path


def set_threads(n: int) -> None:
    """Threads for the library's OpenMP regions and BLAS (0: the library's default)."""
    _lib.lib().rn_set_threads(int(n))


def get_threads() -> int:
    return int(_lib.lib().rn_get_threads())
