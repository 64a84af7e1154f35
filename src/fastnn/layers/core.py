"""The layer protocol and the layers of a flat network: Dense, Activation, Dropout.

A layer's `forward(x)` returns its output and a `backprop(dy) -> dx` closure that also stores
the parameter gradients (thinc's pattern): the derivative sits beside the forward. Arrays are
batch-first and channels-last; a layer knows the shape of one sample in and out
(`input_shape`, `output_shape`: `(features,)` for flat rows, `(height, width, channels)` for
images). `Dense` computes `act(x @ W + b)` with W of shape (in, out).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np

from fastnn import activations, initializers, regularizers
from fastnn.activations import UnsupportedLayerError
from fastnn.backend import Backend, to_numpy
from fastnn.checks import check_number

Backprop = Callable[[Any], Any]


Shape = tuple[int, ...]


def as_shape(shape: Any, what: str) -> Shape:
    """A sample shape as a tuple of positive ints, from an int or a sequence of them (() is one
    value per sample: a category id, say)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape) if isinstance(shape, (tuple, list)) else None
    if dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"{what} must be a positive int or a tuple of them, got {shape!r}")
    return tuple(int(d) for d in dims)


class Layer:
    """Base class: `build` creates parameters for an input shape, `forward` runs the layer.
    `input_shape` may be given to the first layer (or to Sequential) to build at once."""

    activation: activations.Activation = activations.Linear()
    merges = False  # whether it takes a list of tensors (Add, Concatenate) rather than one
    draws_random = False  # whether training draws random numbers (Dropout): row blocks then run in turn

    def __init__(self, input_shape: Any = None) -> None:
        self.params: list[Any] = []  # trained by the optimizer
        self.grads: list[Any] = []
        self.state: list[Any] = []  # kept but not trained (BatchNormalization's moving statistics)
        self.input_shape: Shape | None = None if input_shape is None else as_shape(input_shape, "input_shape")
        self.output_shape: Shape | None = None
        self.backend: Backend | None = None
        self.buffers: dict = {}  # scratch arrays a kernel table may keep between steps

    @property
    def input_dim(self) -> int | None:
        """The number of values in one input sample (the features of a flat row)."""
        return None if self.input_shape is None else math.prod(self.input_shape)

    @property
    def output_dim(self) -> int | None:
        return None if self.output_shape is None else math.prod(self.output_shape)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        """Create the parameters for samples of `input_shape`; sets `output_shape`."""
        shape = self._check_input_shape(as_shape(input_shape, "input shape"))
        self.input_shape, self.backend = shape, backend
        self.output_shape = self.compute_output_shape(shape)

    def __call__(self, inputs: Any) -> Any:
        """The functional API: this layer applied to a fastnn.Input tensor (or another layer's
        output), a symbolic tensor of the output shape; nothing is computed until a Model runs."""
        from fastnn.graph import call_layer

        return call_layer(self, inputs)

    def output_shape_for(self, input_shape: Shape) -> Shape:
        """The output sample shape for inputs of `input_shape`, checked, without building."""
        return self.compute_output_shape(self._check_input_shape(as_shape(input_shape, "input shape")))

    def _check_input_shape(self, shape: Shape) -> Shape:
        if self.input_shape is not None and self.input_shape != shape:
            raise ValueError(f"{self!r} was declared with input_shape={self.input_shape} but receives samples of "
                             f"shape {shape}")
        return shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The shape of one output sample (the input's, unless a layer says otherwise)."""
        return input_shape

    def forward(self, x: Any, need_dx: bool = True, logits: bool = False, train: bool = False,
                ops: Any = None) -> tuple[Any, Backprop]:
        """Output for `x` and the closure mapping d loss/d output to d loss/d x. With
        `logits=True` the activation is skipped (the loss applies it, fused). With `train=True`
        the output may live in a scratch buffer that the next training step overwrites. `ops`:
        the table to compute with (default: the backend's)."""
        raise NotImplementedError

    def set_params(self, params: list[Any]) -> None:
        self.params = list(params)
        self.buffers.clear()

    def replica(self, buffers: dict) -> Layer:
        """This layer as another thread runs it on other rows of the batch: the same parameters
        and settings, with `buffers` for its scratch arrays and gradients of its own."""
        twin = copy.copy(self)
        twin.buffers, twin.grads = buffers, []
        return twin

    def set_state(self, state: list[Any]) -> None:
        self.state = list(state)

    @property
    def weights(self) -> list[Any]:
        """The trained parameters, then the kept state: what get_weights lists, in Keras's order."""
        return [*self.params, *self.state]

    regularized = False  # whether penalty() adds to the loss

    def penalty(self) -> Any:
        """This layer's weight penalty, added to the loss (0 for most layers)."""
        return 0.0

    def get_config(self) -> dict:
        raise NotImplementedError

    # -- exchange: each layer translates itself (fastnn.onnx_export, fastnn.torch_interop) --

    def onnx_nodes(self, graph: Any, x: str) -> str:
        """Add this layer's ONNX nodes on tensor `x` to `graph` (a fastnn.onnx_export.OnnxGraph);
        returns the name of the layer's output tensor."""
        raise UnsupportedLayerError(f"{self!r} has no ONNX export; give {type(self).__name__} an onnx_nodes method")

    torch_module_count = 1  # how many torch.nn modules torch_modules() returns

    def torch_modules(self) -> list[Any]:
        """Fresh torch.nn modules computing this layer (weights are set from torch_state)."""
        raise UnsupportedLayerError(f"{self!r} has no PyTorch equivalent; to_torch and .safetensors support "
                                    "Dense, Activation and Dropout")

    def torch_state(self) -> dict[str, np.ndarray]:
        """This layer's weights in PyTorch's layout, named relative to its first module ("0.weight")."""
        if self.params:
            self.torch_modules()  # raises the layer's own error
        return {}

    def params_from_torch(self, state: dict[str, Any]) -> list[Any]:
        """This layer's parameters (fastnn's order and layout) from `torch_state`-named host arrays."""
        return []


class Dense(Layer):
    """Fully connected layer: y = activation(x @ W + b), or activation(x @ W) with
    use_bias=False; optional weight penalties (fastnn.regularizers) on W and b."""

    def __init__(
        self,
        units: int,
        activation: str | activations.Activation | None = None,
        kernel_initializer: str | dict | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | dict | initializers.Initializer = "zeros",
        input_dim: int | None = None,
        use_bias: bool = True,
        kernel_regularizer: str | dict | regularizers.Regularizer | None = None,
        bias_regularizer: str | dict | regularizers.Regularizer | None = None,
    ) -> None:
        if input_dim is not None and (not isinstance(input_dim, (int, np.integer)) or input_dim < 1):
            raise ValueError(f"Dense input_dim must be a positive integer, got {input_dim!r}")
        super().__init__(input_dim)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.use_bias = bool(use_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer) if use_bias else None

    @property
    def W(self) -> Any:
        return self.params[0]

    @property
    def b(self) -> Any:
        return self.params[1] if self.use_bias else None

    @property
    def regularized(self) -> bool:
        return self.kernel_regularizer is not None or self.bias_regularizer is not None

    def _check_input_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(f"Dense({self.units}) takes flat samples (features,) but receives samples of shape "
                             f"{shape}: put a Flatten() layer before it")
        if self.input_shape is not None and self.input_shape != shape:
            raise ValueError(f"Dense({self.units}) was declared with input_dim={self.input_shape[0]} "
                             f"but receives {shape[0]} features")
        return shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (self.units,)

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        input_dim = self.input_shape[0]
        W = self.kernel_initializer((input_dim, self.units), rng)
        params = [backend.asarray(W)]
        if self.use_bias:
            params.append(backend.asarray(self.bias_initializer((self.units,), rng)))
        self.set_params(params)

    def penalty(self) -> Any:
        """The regularizers' share of the loss (0 without them)."""
        total = 0.0
        for reg, p in ((self.kernel_regularizer, self.W), (self.bias_regularizer, self.b)):
            if reg is not None:
                total = total + reg(p)
        return total

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        ops, act = ops or self.backend.ops, activations.Linear() if logits else self.activation
        W, b = self.W, self.b
        buffers = self.buffers if train else None
        y, z = ops.dense_forward(x, W, b, act, buffers)

        def backprop(dy):
            dx, dW, db = ops.dense_backward(dy, x, W, y, z, act, need_dx, buffers)
            if self.kernel_regularizer is not None:
                dW = dW + self.kernel_regularizer.gradient(W)
            if self.bias_regularizer is not None:
                db = db + self.bias_regularizer.gradient(b)
            self.grads = [dW, db] if self.use_bias else [dW]
            return dx

        return y, backprop

    def get_config(self) -> dict:
        config = {
            "class": "Dense",
            "units": self.units,
            "activation": self.activation.get_config(),
            "kernel_initializer": self.kernel_initializer.get_config(),
            "bias_initializer": self.bias_initializer.get_config(),
            "input_dim": self.input_dim,
        }
        if not self.use_bias:
            config["use_bias"] = False
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key).get_config()
        return config

    def onnx_nodes(self, graph, x):
        z = graph.node("MatMul", [x, graph.weight(self.W, "kernel")])
        if self.use_bias:
            z = graph.node("Add", [z, graph.weight(self.b, "bias")])
        return self.activation.onnx_nodes(graph, z)

    @property
    def torch_module_count(self) -> int:
        return 1 if self.activation.identity else 2

    def torch_modules(self):
        import torch

        act = self.activation.torch_module()
        return [torch.nn.Linear(self.input_dim, self.units, bias=self.use_bias), *([act] if act else [])]

    def torch_state(self):
        state = {"0.weight": np.ascontiguousarray(to_numpy(self.W).T)}  # torch keeps (out, in)
        if self.use_bias:
            state["0.bias"] = np.array(to_numpy(self.b))
        return state

    def params_from_torch(self, state):
        kernel = np.ascontiguousarray(np.asarray(state["0.weight"]).T)  # row-major as built: the same GEMM, the same bits
        return [kernel, *([np.asarray(state["0.bias"])] if self.use_bias else [])]

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation.name!r})"


class Activation(Layer):
    """An activation as a layer of its own: `Activation("softmax")`."""

    def __init__(self, activation: str | activations.Activation) -> None:
        super().__init__()
        self.activation = activations.get(activation)

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        if logits:
            return x, lambda dy: dy
        act = self.activation
        y = act.forward(x)
        return y, lambda dy: act.backward(dy, x, y)

    def get_config(self) -> dict:
        return {"class": "Activation", "activation": self.activation.get_config()}

    def onnx_nodes(self, graph, x):
        y = self.activation.onnx_nodes(graph, x)
        return graph.node("Identity", [x]) if y == x else y  # linear: its own tensor all the same

    def torch_modules(self):
        import torch

        return [self.activation.torch_module() or torch.nn.Identity()]

    def __repr__(self) -> str:
        return f"Activation({self.activation.name!r})"


class Dropout(Layer):
    """Inverted dropout: while training, each input is zeroed with probability `rate` and the
    rest scaled by 1 / (1 - rate); identity at inference. Masks are drawn on the host from
    `seed`, or else from the model's seed, so a run is reproducible on every backend."""

    draws_random = True

    def __init__(self, rate: float, seed: int | None = None) -> None:
        super().__init__()
        rate = check_number(rate, "Dropout rate")
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate, self.seed = rate, seed
        self.rng: np.random.Generator | None = None

    def build(self, input_shape: Any, rng: np.random.Generator, backend: Backend) -> None:
        super().build(input_shape, rng, backend)
        # a child of the model's seed, not draws from its generator: later layers' weights stay as they were
        self.rng = np.random.default_rng(self.seed if self.seed is not None else rng.bit_generator.seed_seq.spawn(1)[0])

    def forward(self, x, need_dx=True, logits=False, train=False, ops=None):
        if not train or self.rate == 0:
            return x, lambda dy: dy
        keep = self.rng.random(tuple(x.shape)) >= self.rate
        mask = self.backend.asarray(keep / (1 - self.rate), x.dtype)
        return x * mask, lambda dy: dy * mask

    def get_config(self) -> dict:
        return {"class": "Dropout", "rate": self.rate, "seed": self.seed}

    def onnx_nodes(self, graph, x):
        return graph.node("Identity", [x])  # inference only: dropout is the identity there

    def torch_modules(self):
        import torch

        return [torch.nn.Dropout(self.rate)]

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"
