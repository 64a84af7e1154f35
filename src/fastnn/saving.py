"""`model.save(path)` / `fastnn.load(path)`: one .npz or .safetensors file (no pickle) holding the
architecture and compile settings as JSON, the weights and the optimizer state. Written atomically, loads
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


class SaveError(OSError):
    """A model file that could not be written: names the user's path and why."""


def save(model: Any, path: str | os.PathLike) -> Path:
    """Write `model` to `path`: `.safetensors` (fastnn.safetensors_io) or else `.npz`, all at once
    (see write_atomically); under fastnn.distributed only rank 0 writes (the others hold the
    same model)."""
    path = Path(path)
    if not distributed.is_root():
        return path
    check_writable(path)
    arrays = state_arrays(model)
    if path.suffix == ".safetensors":
        from fastnn import safetensors_io

        data = safetensors_io.dumps(model, arrays)
        return write_atomically(path, lambda f: f.write(data))
    return write_atomically(path, lambda f: np.savez(f, **arrays))


def write_atomically(path: Path, write: Any) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it to `path`: the file
    appears whole or not at all. Any OSError becomes one SaveError naming `path`."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would make it: mkstemp's 0600 hid it from others
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError):
            raise SaveError(f"cannot save to {path}: {err.strerror or err}; choose a folder you can write to") from err
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
    """A model saved by `save` (.npz or .safetensors), on `backend` and `device` (default: the
    active backend), compiled as it was saved and with its optimizer state, ready to predict or
    to continue training."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, backend, device)
    arrays, config = _read(path)
    return _rebuild(arrays, config, backend, device, str(path))


def _load_safetensors(path: Path, backend: str | None, device: str | None) -> Any:
    from fastnn import safetensors_io
    from fastnn.torch_interop import weights_from_torch_state

    weights, arrays, text = safetensors_io.read(path)
    if text is None:
        raise ValueError(f"{path} holds weights but no fastnn architecture (its metadata has no 'fastnn' entry: "
                         "written by safetensors.torch.save_file?); build the same network, e.g. with "
                         "fastnn.from_torch(module), and call model.load_weights(path)")
    config = _check_config(json.loads(text), path)

    def weights_of(model: Any) -> list[np.ndarray]:
        return weights_from_torch_state(model, weights, str(path))

    return _rebuild(arrays, config, backend, device, str(path), weights_of)


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Set `model`'s weights from a .safetensors file named as PyTorch's state_dict names them
    (one written by fastnn, or by safetensors.torch.save_file(torch_module.state_dict()))."""
    from fastnn import safetensors_io
    from fastnn.torch_interop import weights_from_torch_state

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"load_weights reads .safetensors files, got {path}; load a .npz model with fastnn.load")
    if not model.built:
        raise RuntimeError("load_weights needs a built model: give the first layer input_dim or call model.build")
    weights, _, _ = safetensors_io.read(path)
    model.set_weights(weights_from_torch_state(model, weights, str(path)))


def _rebuild(arrays: dict[str, np.ndarray], config: dict, backend: str | None, device: str | None,
             source: str, weights_of: Any = None) -> Any:
    """The model of `config` with its arrays; `weights_of(model)` gives the weights when the
    arrays do not hold them as weight_<i>."""
    from fastnn.backend import use
    from fastnn.model import from_config

    with use(backend, device=device) if backend else contextlib.nullcontext():
        model = from_config(config["model"])
    if weights_of is not None and model.built:
        arrays.update({f"weight_{i}": w for i, w in enumerate(weights_of(model))})
    count = sum(len(layer.weights) for layer in model.layers)  # as get_weights lists them
    missing = [f"weight_{i}" for i in range(count) if f"weight_{i}" not in arrays]
    if missing:
        raise ValueError(f"{source} is an incomplete fastnn model file: it lacks {', '.join(missing)}")
    if model.built:
        model.set_weights([arrays[f"weight_{i}"] for i in range(count)])
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
    return arrays, _check_config(config, path)


def _check_config(config: Any, path: Path) -> dict:
    """The file's config, once it is one that this fastnn reads."""
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt != FORMAT:
        raise ValueError(f"{path} is not a fastnn model file (format {fmt!r})")
    if config.get("version", 0) > VERSION:
        raise ValueError(f"{path} was written by a newer fastnn (file version {config['version']}); upgrade fastnn")
    if "model" not in config:
        raise ValueError(f"{path} is an incomplete fastnn model file: its config lacks the architecture ('model')")
    return config
