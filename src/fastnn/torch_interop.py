"""`fastnn.from_torch(torch_sequential)` and `model.to_torch()`: the layers both libraries have,
with their weights. PyTorch's state_dict naming ("0.weight", (out, in) layout) is also the
naming of fastnn's .safetensors files and of `model.load_weights`; each layer gives its own
(`Layer.torch_state`, `torch_module_count`, `params_from_torch`). Only from_torch needs torch.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastnn import activations
from fastnn.activations import UnsupportedLayerError
from fastnn.layers import Activation, Dense, Dropout, Layer


def torch_state(model: Any) -> dict[str, np.ndarray]:
    """The model's weights as host arrays named as `model.to_torch().state_dict()` names them."""
    state, index = {}, 0
    for layer in model.layers:
        for key, value in layer.torch_state().items():
            position, rest = key.split(".", 1)
            state[f"{index + int(position)}.{rest}"] = value
        index += layer.torch_module_count
    return state


def weights_from_torch_state(model: Any, state: dict[str, Any], source: str) -> list[np.ndarray]:
    """`model.get_weights()`'s list from arrays named as torch_state names them; a ValueError
    naming `source` and the names or shapes that do not fit."""
    expected = torch_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source} does not fit this model's weights: missing {missing or 'none'}, unexpected "
                         f"{unexpected or 'none'} (expected {sorted(expected)})")
    for name, value in expected.items():
        if tuple(np.shape(state[name])) != value.shape:
            raise ValueError(f"{source}: {name} has shape {tuple(np.shape(state[name]))}, this model's has {value.shape}")
    weights, index = [], 0
    for layer in model.layers:
        own = {}
        for name, value in state.items():
            position, rest = name.split(".", 1)
            if index <= int(position) < index + layer.torch_module_count:
                own[f"{int(position) - index}.{rest}"] = np.asarray(value)
        weights += layer.params_from_torch(own)
        index += layer.torch_module_count
    return weights


def to_torch(model: Any) -> Any:
    """A torch.nn.Sequential computing what `model` computes, with a copy of its weights (in
    its dtype, on the CPU, in PyTorch's default train mode: call .eval() to predict)."""
    import torch

    if not model.built:
        raise RuntimeError("cannot convert a model that is not built: it has no weights yet; give the first layer "
                           "input_dim, or call model.build(n_features) or fit first")
    modules = [module for layer in model.layers for module in layer.torch_modules()]
    dtype = torch.float64 if model.backend.dtype_name == "float64" else torch.float32
    module = torch.nn.Sequential(*modules).to(dtype)
    module.load_state_dict({name: torch.from_numpy(np.array(value, copy=True)) for name, value in
                            torch_state(model).items()})
    return module


def _activation(name: str) -> Callable[[Any], activations.Activation]:
    return lambda module: activations.get(name)


def _leaky_relu(module: Any) -> activations.Activation:
    return activations.LeakyReLU(module.negative_slope)


def _softmax(module: Any) -> activations.Activation:
    if module.dim not in (-1, 1):
        raise UnsupportedLayerError(f"{module!r}: fastnn's softmax runs over the last axis (dim=-1)")
    return activations.Softmax()


def _gelu(module: Any) -> activations.Activation:
    if module.approximate != "tanh":
        raise UnsupportedLayerError(f"{module!r}: fastnn's GELU is the tanh approximation; use "
                                    "torch.nn.GELU(approximate='tanh')")
    return activations.GELU()


ACTIVATIONS_FROM_TORCH: dict[str, Callable[[Any], activations.Activation]] = {
    "Sigmoid": _activation("sigmoid"), "Tanh": _activation("tanh"), "ReLU": _activation("relu"),
    "LeakyReLU": _leaky_relu, "Softmax": _softmax, "SiLU": _activation("swish"), "GELU": _gelu,
    "Identity": _activation("linear"),
}
LAYERS_FROM_TORCH: dict[str, Callable[[Any], Layer]] = {
    "Linear": lambda m: Dense(m.out_features, None, input_dim=m.in_features, use_bias=m.bias is not None),
    "Dropout": lambda m: Dropout(m.p),
}


def from_torch(module: Any, seed: int | None = None) -> Any:
    """A fastnn Sequential with the layers and a copy of the weights of `module` (a
    torch.nn.Sequential of Linear, Dropout and the activations fastnn has, or one such module),
    on the active backend, in the module's dtype (float32 or float64). A Linear followed by an
    activation becomes one Dense with that activation."""
    import torch

    from fastnn.model import Sequential

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module (a torch.nn.Sequential), got {type(module).__name__}")
    sequence = module if isinstance(module, torch.nn.Sequential) else torch.nn.Sequential(module)
    layers: list[Layer] = []
    for index, child in enumerate(sequence):
        kind = type(child).__name__
        if kind in ACTIVATIONS_FROM_TORCH:
            act = ACTIVATIONS_FROM_TORCH[kind](child)
            previous = layers[-1] if layers else None
            if kind != "Identity" and isinstance(previous, Dense) and previous.activation.identity:
                previous.activation = act  # Linear + activation: one Dense, the same torch naming
            else:
                layers.append(Activation(act))
        elif kind in LAYERS_FROM_TORCH:
            layers.append(LAYERS_FROM_TORCH[kind](child))
        else:
            raise UnsupportedLayerError(
                f"from_torch: module {index} ({child!r}) has no fastnn equivalent; supported: "
                f"{', '.join([*LAYERS_FROM_TORCH, *ACTIVATIONS_FROM_TORCH])} inside one flat torch.nn.Sequential")
    dtypes = {p.dtype for p in sequence.parameters()}
    if not dtypes <= {torch.float32, torch.float64} or len(dtypes) > 1:
        raise TypeError(f"from_torch: the module's parameters are {sorted(map(str, dtypes))}; fastnn takes one of "
                        "float32 or float64: call module.float() or module.double() first")
    model = Sequential(layers, seed=seed, dtype="float64" if dtypes == {torch.float64} else "float32")
    first = next((layer for layer in layers if isinstance(layer, Dense)), None)
    if first is not None:
        if not model.built:
            model.build(first.input_dim)  # Dropout and activations keep the width
        state = {name: value.detach().cpu().numpy() for name, value in sequence.state_dict().items()}
        model.set_weights(weights_from_torch_state(model, state, "the torch module"))
    return model
