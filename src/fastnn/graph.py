"""The functional API: `fastnn.Input`, layers called on symbolic tensors, and the `Graph` that
a `fastnn.Model` runs.

`x = Input(shape=(13,)); h = Dense(64, "relu")(x)` records which layer feeds which and the
shape of one sample of each tensor; it computes nothing. `Model(inputs, outputs)` walks back
from the output (`trace`), refuses missing and unused inputs and shared layers, and freezes
the result as a `Graph`: tensor ids 0..k-1 are the k inputs, id k+i is the output of node i,
and node i runs layer i, after every node it takes from. `Sequential` is the chain graph.

A model with several inputs (or a scalar one) takes them through fit as one packed float
matrix, each input's values side by side (`pack_inputs`): every engine, shuffler, validation
split and data-parallel shard then sees one array. `Graph.split` takes it apart for the layers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fastnn.checks import as_backend_array, check_features

Shape = tuple[int, ...]
FLOAT32_EXACT = 2 ** 24  # the largest integer range float32 holds exactly: ids travel packed as floats


@dataclass(frozen=True)
class InputSpec:
    """One input of a model: its name, the shape of one sample, and "float" or "int" (ids)."""

    name: str
    shape: Shape
    kind: str = "float"

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def get_config(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": "int64" if self.kind == "int" else "float32"}


class SymbolicTensor:
    """What `fastnn.Input` and a layer called on such tensors return: the shape of one sample
    (no batch axis), and the layer call that makes it (`layer`, `inputs`; none for an Input)."""

    def __init__(self, shape: Shape, layer: Any = None, inputs: tuple["SymbolicTensor", ...] = (),
                 spec: InputSpec | None = None) -> None:
        self.shape, self.layer, self.inputs, self.spec = tuple(shape), layer, tuple(inputs), spec

    def __repr__(self) -> str:
        source = f"Input {self.spec.name!r}" if self.spec else repr(self.layer)
        return f"<SymbolicTensor shape={(None, *self.shape)} from {source}>"


def Input(shape: Any, dtype: Any = "float32", name: str | None = None) -> SymbolicTensor:  # noqa: N802  Keras's name
    """A model input: samples of `shape` (a tuple, () for one value per sample such as a
    category id); dtype "float32"/"float64" (data, cast to the model's dtype) or
    "int32"/"int64" (ids for an Embedding). `name` keys the input when fit gets a dict."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool) else shape
    if not isinstance(dims, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"Input shape must be a tuple of positive ints (one sample, without the batch axis; () for "
                         f"one value per sample), got {shape!r}")
    try:
        kind = np.dtype(dtype).kind
    except TypeError as err:
        raise TypeError(f"Input dtype must be a NumPy dtype name such as 'float32' or 'int64', got {dtype!r}") from err
    if kind not in "fiu":
        raise ValueError(f"Input dtype must be a float or an integer type, got {dtype!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Input name must be a string, got {name!r}")
    return SymbolicTensor(tuple(int(d) for d in dims), spec=InputSpec(name or "", tuple(int(d) for d in dims),
                                                                         "float" if kind == "f" else "int"))


def call_layer(layer: Any, inputs: Any) -> SymbolicTensor:
    """`layer(inputs)` on symbolic tensors: the output tensor, its shape checked and inferred
    by the layer (a merging layer takes a list of tensors)."""
    tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not tensors or not all(isinstance(t, SymbolicTensor) for t in tensors):
        raise TypeError(f"{layer!r} was called on {type(inputs).__name__}: layers are called on fastnn.Input tensors "
                        "to build a model (x = fastnn.Input(shape=(13,)); y = Dense(8)(x); model = fastnn.Model(x, y)); "
                        "to compute on arrays, call model.predict(x)")
    if layer.merges != isinstance(inputs, (list, tuple)) or (layer.merges and len(tensors) < 2):
        raise TypeError(f"{layer!r} takes a list of two or more tensors" if layer.merges else
                        f"{layer!r} takes one tensor, got a list of {len(tensors)}; join tensors with Concatenate() "
                        "or Add() first")
    shapes = [t.shape for t in tensors]
    return SymbolicTensor(layer.output_shape_for(shapes if layer.merges else shapes[0]), layer, tuple(tensors))


def _as_tensors(value: Any, what: str) -> tuple[list[SymbolicTensor], list[str] | None]:
    """The tensors of Model's `inputs` or `outputs` (one, a list, or a dict by name) and the
    dict's keys (None for a list)."""
    names = None
    if isinstance(value, dict):
        names, value = list(value), list(value.values())
    tensors = list(value) if isinstance(value, (list, tuple)) else [value]
    if not tensors or not all(isinstance(t, SymbolicTensor) for t in tensors):
        raise TypeError(f"Model {what} must be fastnn.Input tensors or layer outputs (one, a list or a dict), got "
                        f"{value!r}")
    return tensors, names


@dataclass(frozen=True)
class Graph:
    """Which tensors each layer takes, in an order where every layer runs after its inputs.
    `nodes[i]` holds the tensor ids node i (layer i) takes; its output is tensor k + i, and
    the last node's output is the model's."""

    inputs: tuple[InputSpec, ...]
    nodes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        k = len(self.inputs)
        for i, ids in enumerate(self.nodes):
            if not ids or any(not 0 <= t < k + i for t in ids):
                raise ValueError(f"graph node {i} takes tensors {list(ids)}, but only tensors 0-{k + i - 1} exist "
                                 "before it: the graph has a cycle or a forward reference")
        consumed = {t for ids in self.nodes for t in ids}
        unused = [spec.name for t, spec in enumerate(self.inputs) if t not in consumed]
        if unused:
            raise ValueError(f"the model's input(s) {unused} feed no layer of the output: remove them from inputs, "
                             "or connect them to the output")
        dangling = [i for i in range(len(self.nodes) - 1) if k + i not in consumed]
        if dangling:
            raise ValueError(f"graph node(s) {dangling} feed nothing that reaches the output")

    @classmethod
    def chain(cls, input_shape: Shape, depth: int) -> "Graph":
        """`depth` layers in a row on one input: a Sequential model."""
        return cls((InputSpec("input", tuple(input_shape)),), tuple((i,) for i in range(depth)))

    @functools.cached_property
    def linear(self) -> bool:
        """One input and each layer feeding the next: the networks the Dense fast paths train."""
        return len(self.inputs) == 1 and all(ids == (i,) for i, ids in enumerate(self.nodes))

    @functools.cached_property
    def packed(self) -> bool:
        """Whether x travels as one (n, width) matrix of every input side by side."""
        return len(self.inputs) > 1 or self.inputs[0].shape == ()

    @property
    def width(self) -> int:
        return sum(spec.size for spec in self.inputs)

    def split(self, x: Any, xp: Any) -> list[Any]:
        """Each input's (n, *shape) part of x (a packed matrix, or the one input itself)."""
        if not self.packed:
            return [x]
        parts, start, n = [], 0, x.shape[0]
        for spec in self.inputs:
            parts.append(xp.reshape(x[:, start:start + spec.size], (n, *spec.shape)))
            start += spec.size
        return parts

    @functools.cached_property
    def _steps(self) -> tuple[tuple[tuple[int, ...], bool], ...]:
        """Per node: the tensor ids it takes, and whether it needs a gradient for any of them
        (not for the model's inputs)."""
        k = len(self.inputs)
        return tuple((ids, any(t >= k for t in ids)) for ids in self.nodes)

    def forward(self, layers: Sequence[Any], x: Any, xp: Any, train: bool = False, logits: bool = False,
                ops: Any = None) -> tuple[Any, Callable[[Any], None]]:
        """The output for x (the last layer's logits with `logits`), and `backward(d output)`,
        which runs every layer's backprop in reverse order and leaves the gradients in the layers.
        A tensor that feeds several layers gets the sum of their gradients."""
        values, backprops, k, last = self.split(x, xp), [], len(self.inputs), len(self.nodes) - 1
        for i, (layer, (ids, need_dx)) in enumerate(zip(layers, self._steps)):
            args = [values[t] for t in ids]
            y, backprop = layer.forward(args if layer.merges else args[0], need_dx=need_dx,
                                        logits=logits and i == last, train=train, ops=ops)
            values.append(y)
            backprops.append(backprop)

        def backward(grad: Any) -> None:
            grads: list[Any] = [None] * len(values)
            grads[-1] = grad
            for i in range(last, -1, -1):
                dx = backprops[i](grads[k + i])
                for t, d in zip(self.nodes[i], dx if layers[i].merges else (dx,)):
                    if t >= k and d is not None:
                        grads[t] = d if grads[t] is None else grads[t] + d

        return values[-1], backward

    def get_config(self) -> dict:
        return {"inputs": [spec.get_config() for spec in self.inputs], "nodes": [list(ids) for ids in self.nodes]}

    @classmethod
    def from_config(cls, config: dict) -> "Graph":
        inputs = tuple(InputSpec(c["name"], tuple(c["shape"]), "int" if np.dtype(c["dtype"]).kind in "iu" else "float")
                       for c in config["inputs"])
        return cls(inputs, tuple(tuple(ids) for ids in config["nodes"]))


def trace(inputs: Any, outputs: Any) -> tuple[list[Any], Graph, list[str] | None]:
    """(layers in running order, their Graph, the names fit's dict x is keyed by) of the model
    from `inputs` to `outputs`; a clear error for a missing or unused input, a layer called
    twice (shared, or in a cycle) and a model with several outputs."""
    input_tensors, names = _as_tensors(inputs, "inputs")
    output_tensors, _ = _as_tensors(outputs, "outputs")
    if len(output_tensors) != 1:
        raise ValueError(f"a fastnn Model has one output (one loss compares it to y), got {len(output_tensors)}; "
                         "join them with Concatenate() into one")
    if output_tensors[0].layer is None:
        raise ValueError("the model's output is an Input: put at least one layer between them")
    specs = _input_specs(input_tensors, names)
    ids = {id(t): i for i, t in enumerate(input_tensors)}
    if len(ids) != len(input_tensors):
        raise ValueError("the same Input tensor is listed twice in inputs")
    layers, nodes, calls = [], [], {}
    # Depth-first, post-order, with an explicit stack (deep residual stacks outgrow recursion).
    stack = [(output_tensors[0], False)]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in ids:
            continue
        if tensor.layer is None:
            raise ValueError(f"the output depends on an Input of shape {tensor.shape} that is not in the model's "
                             "inputs: add it to inputs=[...]")
        owner = calls.get(id(tensor.layer))
        if owner is not None and owner is not tensor:
            raise ValueError(f"{tensor.layer!r} is called twice in this graph (a shared layer, or a cycle through its "
                             "own output); fastnn layers are not shared: make a second layer with the same arguments")
        if expanded:
            ids[id(tensor)] = len(input_tensors) + len(layers)
            layers.append(tensor.layer)
            nodes.append(tuple(ids[id(t)] for t in tensor.inputs))
            continue
        if owner is tensor:  # reached again through another path: already placed, or on the stack
            continue
        calls[id(tensor.layer)] = tensor
        stack.append((tensor, True))
        stack.extend((t, False) for t in reversed(tensor.inputs))
    graph = Graph(specs, tuple(nodes))
    return layers, graph, [spec.name for spec in specs]


def _input_specs(tensors: list[SymbolicTensor], names: list[str] | None) -> tuple[InputSpec, ...]:
    specs = []
    for i, tensor in enumerate(tensors):
        if tensor.spec is None:
            raise ValueError(f"inputs[{i}] is a layer's output ({tensor!r}), not a fastnn.Input")
        name = (names[i] if names else None) or tensor.spec.name or ("input" if len(tensors) == 1 else f"input_{i}")
        specs.append(InputSpec(name, tensor.spec.shape, tensor.spec.kind))
    duplicates = sorted({s.name for s in specs if [t.name for t in specs].count(s.name) > 1})
    if duplicates:
        raise ValueError(f"the model's inputs share the name(s) {duplicates}: give each fastnn.Input its own name")
    return tuple(specs)


def pack_inputs(graph: Graph, x: Any, backend: Any) -> Any:
    """fit's x for a model of `graph`: one array, or a list (the inputs' order) or dict (by
    input name) of arrays, checked input by input, as the model's single array (packed when the
    graph has several inputs). Clear errors for a missing or extra input, a wrong shape and
    different row counts."""
    specs, names = graph.inputs, [spec.name for spec in graph.inputs]
    if isinstance(x, dict):
        missing, extra = [n for n in names if n not in x], [k for k in x if k not in names]
        if missing or extra:
            raise ValueError(f"x is a dict with keys {list(x)}, but the model's inputs are {names}: "
                             + (f"missing {missing}" if missing else f"no input is called {extra}"))
        parts = [x[n] for n in names]
    elif isinstance(x, (list, tuple)) and len(specs) > 1:
        if len(x) != len(specs):
            raise ValueError(f"the model has {len(specs)} inputs {names} but x is a list of {len(x)} arrays: give one "
                             "array per input, in that order (or a dict by name)")
        parts = list(x)
    else:
        if len(specs) > 1:
            raise ValueError(f"the model has {len(specs)} inputs {names}: give x as a list of {len(specs)} arrays in "
                             "that order, or a dict by name")
        parts = list(x) if isinstance(x, tuple) and len(x) == 1 else [x]
    what = (lambda spec: "x") if len(specs) == 1 else (lambda spec: f"x[{spec.name!r}]")
    arrays = [_check_input(part, spec, backend, what(spec)) for part, spec in zip(parts, specs)]
    rows = [a.shape[0] for a in arrays]
    if len(set(rows)) > 1:
        raise ValueError("the inputs have different row counts (" + ", ".join(f"{s.name}: {r}" for s, r in zip(specs, rows))
                         + "); every input needs one row per sample")
    if not graph.packed:
        return arrays[0]
    xp = backend.xp
    return xp.concat([xp.reshape(a, (rows[0], spec.size)) for a, spec in zip(arrays, specs)], axis=1)


def _check_input(data: Any, spec: InputSpec, backend: Any, what: str) -> Any:
    """One input's array, checked against its shape and kind, in the model's float dtype."""
    xp = backend.xp
    if spec.shape == () or spec.kind == "int":
        raw = as_backend_array(data, backend, what)
        if spec.shape == () and raw.ndim == 2 and raw.shape[1] == 1:
            raw = xp.reshape(raw, (-1,))
        if spec.shape == () and raw.ndim != 1:
            raise ValueError(f"{what} holds one value per sample: it must have shape (n,), got {tuple(raw.shape)}")
        if spec.kind == "int" and xp.isdtype(raw.dtype, "real floating") and bool(xp.any(raw != xp.floor(raw))):
            raise ValueError(f"{what} feeds an integer Input (ids), but holds values that are not whole numbers")
        if spec.kind == "int" and backend.dtype_name == "float32" and math.prod(raw.shape) and \
                bool(xp.any(xp.abs(raw) >= FLOAT32_EXACT)):
            raise ValueError(f"{what} holds ids of 2**24 or more, which float32 cannot carry exactly; build the model "
                             "with dtype='float64', or renumber the ids")
        data = xp.reshape(raw, (-1, 1)) if spec.shape == () else raw
    return check_features(data, backend, spec.shape or (1,), what)
