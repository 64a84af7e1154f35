"""`.safetensors` model files (`model.save("m.safetensors")`, `fastnn.load`): the weights named
and laid out as PyTorch's state_dict of `model.to_torch()` ("0.weight" of shape (out, in)), the
optimizer state as "fastnn.optimizer_<i>_<slot>", the architecture and compile settings as the
JSON metadata entry "fastnn". No pickle either way. Needs the safetensors package (fastnn[onnx]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METADATA_KEY, PREFIX = "fastnn", "fastnn."


def _package() -> Any:
    try:
        import safetensors.numpy
    except ImportError as err:
        raise ImportError(".safetensors files need the safetensors package: pip install 'fastnn[onnx]'") from err
    return safetensors


def dumps(model: Any, arrays: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for `model`, from saving.state_arrays' `arrays`."""
    from fastnn.torch_interop import torch_state

    package = _package()
    tensors = {name: np.ascontiguousarray(value) for name, value in torch_state(model).items()}
    tensors.update({PREFIX + name: np.ascontiguousarray(value) for name, value in arrays.items()
                    if name != "config" and not name.startswith("weight_")})
    return package.numpy.save(tensors, metadata={METADATA_KEY: str(arrays["config"])})


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str | None]:
    """(the weights by torch name, fastnn's other arrays by their .npz names, the metadata's
    fastnn JSON or None) of a .safetensors file; ValueError naming `path` for a file it is not."""
    package = _package()
    try:
        with package.safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as err:  # safetensors raises its own SafetensorError, an OSError or a ValueError
        raise ValueError(f"{path} is not a readable .safetensors file (truncated, or another format?): "
                         f"{type(err).__name__}: {err}") from err
    weights = {name: value for name, value in tensors.items() if not name.startswith(PREFIX)}
    others = {name[len(PREFIX):]: value for name, value in tensors.items() if name.startswith(PREFIX)}
    return weights, others, metadata.get(METADATA_KEY)
