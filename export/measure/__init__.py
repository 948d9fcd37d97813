"""Measure exported models: latency, throughput, size, memory and accuracy.

    artifacts    the API: `measure_artifact(s)`, thread search, the floor
    floor        the NumPy floor (dense network as float32 NumPy GEMMs)
    sizes        bytes after gzip
    environment  cores, peak resident memory, the machine's description
    timing       the timing loop and its summary
    worker       the parent's handle on a child; interleaved timing rounds
    child        the process that loads one runtime and times its windows

Importing this package imports NumPy and the standard library only, never a
deep-learning runtime.
"""

from export.measure.artifacts import DEFAULT_BATCH_SIZES
from export.measure.artifacts import DEFAULT_MAX_TIME_S
from export.measure.artifacts import DEFAULT_MIN_ITERATIONS
from export.measure.artifacts import DEFAULT_MIN_TIME_S
from export.measure.artifacts import DEFAULT_ROUNDS
from export.measure.artifacts import DEFAULT_WARMUP_S
from export.measure.artifacts import EXTENSIONS
from export.measure.artifacts import FORMATS
from export.measure.artifacts import best_of_threads
from export.measure.artifacts import build_spec
from export.measure.artifacts import infer_format
from export.measure.artifacts import measure_artifact
from export.measure.artifacts import measure_artifacts
from export.measure.artifacts import measure_best_threads
from export.measure.artifacts import measure_floor
from export.measure.artifacts import summarize
from export.measure.artifacts import thread_counts
from export.measure.environment import available_threads
from export.measure.floor import NumpyDenseForward
from export.measure.floor import dense_layers
from export.measure.floor import numpy_forward
from export.measure.floor import save_dense_layers
from export.measure.sizes import gzip_size
from export.measure.worker import Job
from export.measure.worker import MeasurementWorker
