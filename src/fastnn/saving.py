"""`model.save(path)` / `fastnn.load(path)`: one .npz file (no pickle) holding the architecture
and compile settings as JSON, the weights and the optimizer state. Written atomically, loads
onto any backend: a model trained on a GPU loads on a CPU-only machine. Pickling a model
(scikit-learn's clone and joblib do) goes through the same arrays."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fastnn import distributed
from fastnn.backend import to_numpy
from fastnn.checks import check_writable

FORMAT, VERSION = "fastnn-model", 1


def save(model: Any, path: str | os.PathLike) -> Path:
    """Write `model` to `path` (a temporary file in the same folder, then an atomic rename);
    under fastnn.distributed only rank 0 writes (the others hold the same model)."""
    path = Path(path)
    if not distributed.is_root():
        return path
    arrays = state_arrays(model)
    check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would make it: mkstemp's 0600 hid it from others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def state_arrays(model: Any) -> dict[str, np.ndarray]:
    """The whole model as named host arrays, what a file holds: "config" (JSON of the
    architecture and compile settings), the weights and the optimizer state."""
    config: dict[str, Any] = {"format": FORMAT, "version": VERSION, "model": model.get_config(), "compile": None}
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    if model.optimizer is not None:
        config["compile"] = {"optimizer": model.optimizer.get_config(), "loss": model.loss.get_config(),
                             "metrics": model.metric_names, "iterations": model.optimizer.iterations}
        for i, slots in enumerate(model.optimizer.state):
            arrays.update({f"optimizer_{i}_{name}": np.array(to_numpy(v), copy=True) for name, v in slots.items()})
    arrays["config"] = np.array(json.dumps(config))
    return arrays


def restore(arrays: dict[str, np.ndarray], backend: str | None = None, device: str | None = None) -> Any:
    """The model that `state_arrays` described, on `backend` and `device` (how models unpickle)."""
    arrays = dict(arrays)
    config = json.loads(str(arrays.pop("config")))
    return _rebuild(arrays, config, backend, device, "the pickled model")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | os.PathLike, backend: str | None = None, device: str | None = None) -> Any:
    """A model saved by `save`, on `backend` and `device` (default: the active backend),
    compiled as it was saved and with its optimizer state, ready to predict or to continue
    training."""
    path = Path(path)
    arrays, config = _read(path)
    return _rebuild(arrays, config, backend, device, str(path))


def _rebuild(arrays: dict[str, np.ndarray], config: dict, backend: str | None, device: str | None,
             source: str) -> Any:
    from fastnn.backend import use
    from fastnn.model import Sequential

    with use(backend, device=device) if backend else contextlib.nullcontext():
        model = Sequential.from_config(config["model"])
    missing = [f"weight_{i}" for i in range(len(model.params)) if f"weight_{i}" not in arrays]
    if missing:
        raise ValueError(f"{source} is an incomplete fastnn model file: it lacks {', '.join(missing)}")
    if model.built:
        model.set_weights([arrays[f"weight_{i}"] for i in range(len(model.params))])
    settings = config.get("compile")
    if settings:
        model.compile(settings["optimizer"], settings["loss"], settings["metrics"])
        if model.built:
            model.optimizer.build(model.params)
        for i, slots in enumerate(model.optimizer.state):
            for name in slots:
                if f"optimizer_{i}_{name}" not in arrays:
                    raise ValueError(f"{source} is an incomplete fastnn model file: it lacks optimizer_{i}_{name}")
                slots[name] = model.backend.asarray(arrays[f"optimizer_{i}_{name}"], model.backend.dtype, copy=True)
        model.optimizer.iterations = settings["iterations"]
    return model


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, config) of a model file; ValueError naming `path` for anything else."""
    try:
        with open(path, "rb") as handle, contextlib.ExitStack() as stack:
            data = np.load(handle, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                stack.enter_context(data)  # np.load leaks its own handle on a truncated zip otherwise
                arrays = {name: data[name] for name in data.files}
        config = json.loads(str(arrays.pop("config"))) if isinstance(data, np.lib.npyio.NpzFile) else None
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a readable fastnn model file (truncated, or not made by "
                         f"model.save?): {type(err).__name__}: {err}") from err
    if config is None:
        raise ValueError(f"{path} holds a single NumPy array (.npy), not a fastnn model (.npz from model.save)")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{path} is an .npz file but not a fastnn model (format {fmt!r})")
    if config.get("version", 0) > VERSION:
        raise ValueError(f"{path} was written by a newer fastnn (file version {config['version']}); upgrade fastnn")
    if "model" not in config:
        raise ValueError(f"{path} is an incomplete fastnn model file: its config lacks the architecture ('model')")
    return arrays, config
