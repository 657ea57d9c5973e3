"""The package logger, and quiet start-up of the libraries we use.

The package adds no handlers (users configure logging). :func:`quiet_third_party` turns down the start-up noise of
TensorFlow, absl, CUDA and ome_zarr; the command line calls it before it imports them, and a notebook can call it
as its first line (``import deepspot_sd as dsd; dsd.quiet_third_party()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

logger = logging.getLogger("deepspot_sd")

__all__ = ["logger", "quiet_third_party"]

#: Python loggers of third-party libraries whose start-up and read messages are noise to our users.
_NOISY_LOGGERS = ("ome_zarr", "absl", "tensorflow", "h5py", "numba", "jax._src.xla_bridge")

#: Lines that TensorFlow's C++ runtime, absl and CUDA write to the process's stderr while TensorFlow starts.
_NATIVE_NOISE = re.compile(
    r"^("
    r"[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # absl / glog line: I0000 00:00:17.12 5443 port.cc:153] ...
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IWE] tensorflow/"  # older TensorFlow C++ log format
    r")"
)


def quiet_third_party(*, tensorflow: bool = True) -> None:
    """Turn down the start-up and read messages of TensorFlow, absl, CUDA and ome_zarr.

    Sets the log levels of the Python loggers of ome_zarr (its ``no parent found`` lines when spatialdata reads a
    store), absl, TensorFlow and h5py to ``ERROR``; sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless it is set; and, if
    ``tensorflow`` and TensorFlow is installed but not imported yet, imports it and lists its devices with the
    process's stderr captured, so that the lines its C++ runtime writes while starting (oneDNN, CUDA, CPU features,
    which ignore ``TF_CPP_MIN_LOG_LEVEL``) are dropped; any other captured line is written to stderr. Our own
    warnings are unaffected; our INFO lines appear only if the ``deepspot_sd`` logger is set to ``INFO``.

    Call it before the first computation, e.g. as the first cell of a notebook (in Jupyter the C++ lines go to the
    server's terminal, not to the notebook; the Python loggers' lines do reach the notebook). The command line
    ``deepspot-sd`` calls it itself.

    Parameters
    ----------
    tensorflow
        Also start TensorFlow quietly now (a few seconds). ``False`` only sets the levels and the environment.

    Examples
    --------
    >>> import deepspot_sd as dsd
    >>> dsd.quiet_third_party(tensorflow=False)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not tensorflow or "tensorflow" in sys.modules:
        return
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return
    with _drop_native_noise():
        import tensorflow as tf

        tf.config.list_physical_devices()
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


@contextlib.contextmanager
def _drop_native_noise() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2 in the block; replay the lines that are not noise."""
    fd = 2  # what native code writes to, whatever Python's sys.stderr is now
    with tempfile.TemporaryFile() as capture:
        try:
            saved = os.dup(fd)
        except OSError:  # no usable descriptor: nothing to capture
            yield
            return
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not _NATIVE_NOISE.match(line)
            ]
            if kept and sys.stderr is not None:
                sys.stderr.write("\n".join(kept) + "\n")
