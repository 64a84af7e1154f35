"""fastnn: a small, fast neural-network library written once against the Python Array API.

    import fastnn
    fastnn.use("numpy")            # or "cupy", "array_api_strict", "auto"
    model = fastnn.Sequential([fastnn.layers.Dense(8, "relu", input_dim=2),
                               fastnn.layers.Dense(1, "sigmoid")], seed=0)
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=100)
"""

from fastnn import threads  # first: it sets how long OpenBLAS's idle threads spin before numpy loads
from fastnn import (activations, callbacks, datasets, distributed, engines, initializers, layers, losses, metrics,
                    optimizers, schedules, spec)
from fastnn.backend import (
    Backend,
    BackendMismatchError,
    BackendUnavailableError,
    asarray,
    available_backends,
    backend,
    to_numpy,
    use,
)
from fastnn.callbacks import (Callback, EarlyStopping, EpochLog, History, LambdaCallback, LearningRateScheduler,
                              ModelCheckpoint, ProgressBar, ReduceLROnPlateau)
from fastnn.graph import Input
from fastnn.model import Model, Sequential
from fastnn import jax_step  # noqa: F401  registers the jitted step engine of the "jax" backend
from fastnn.activations import UnsupportedLayerError
from fastnn.saving import SaveError, load
from fastnn.torch_interop import from_torch

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendMismatchError", "BackendUnavailableError", "Callback", "EarlyStopping", "History", "Input",
    "LambdaCallback", "Model", "EpochLog", "LearningRateScheduler", "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau", "SaveError", "Sequential", "UnsupportedLayerError",
    "activations", "asarray", "available_backends", "backend", "callbacks", "datasets", "distributed", "engines",
    "from_torch",
    "initializers",
    "layers", "load", "losses", "metrics", "optimizers", "schedules", "spec", "to_numpy", "use",
]
