"""`model.export_onnx(path)`: the model's inference graph as one ONNX file (opset OPSET), input
"input" of shape (batch, features) with a dynamic batch axis (a fastnn.Model of several inputs:
one per input, by its name; integer inputs as int64), output "output". Each layer adds
its own nodes (`Layer.onnx_nodes(graph, x)`), each activation its own (`Activation.onnx_nodes`);
this module only holds the graph being built and writes the file. Needs `fastnn[onnx]`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.backend import to_numpy

OPSET = 17  # Softmax on any axis (13), Clip with tensor bounds (11); ONNX Runtime >= 1.12 runs it
INPUT, OUTPUT, BATCH = "input", "output", "batch"


class OnnxGraph:
    """The nodes and initializers of a graph being built, all in one float dtype."""

    def __init__(self, dtype: Any) -> None:
        from onnx import helper

        self.helper = helper
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: dict[str, int] = {}

    def name(self, hint: str) -> str:
        """A tensor name not used before in this graph: hint, hint_1, hint_2..."""
        count = self._used.get(hint, 0)
        self._used[hint] = count + 1
        return hint if count == 0 else f"{hint}_{count}"

    def weight(self, array: Any, hint: str) -> str:
        """An initializer holding `array` (any backend's) in the graph's dtype; returns its name."""
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(to_numpy(array), self.dtype), name))
        return name

    def constant(self, value: float, hint: str) -> str:
        """A scalar initializer in the graph's dtype."""
        return self.weight(np.asarray(value), hint)

    def integers(self, values: list[int], hint: str) -> str:
        """An int64 initializer (a shape, say); returns its name."""
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def channels_first(self, x: str, rank: int) -> str:
        """fastnn's channels-last tensor as ONNX's convolutions and pools take it: (N, C, ...)."""
        return self.node("Transpose", [x], perm=[0, rank + 1, *range(1, rank + 1)])

    def channels_last(self, x: str, rank: int) -> str:
        return self.node("Transpose", [x], perm=[0, *range(2, rank + 2), 1])

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        """Append an `op` node on `inputs`; returns the name of its one output."""
        output = self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def model(self, inputs: list[tuple[str, tuple[int, ...], bool]], output_tensor: str, output_dim: int,
              doc: str) -> Any:
        """The ModelProto whose graph maps each (name, sample shape, holds ids) input, of shape
        (batch, *shape), to OUTPUT (batch, output_dim)."""
        from onnx import TensorProto, helper

        if output_tensor in {name for name, _, _ in inputs}:  # a graph output may not be its input
            output_tensor = self.node("Identity", [output_tensor])
        for node in self.nodes:
            node.output[:] = [OUTPUT if out == output_tensor else out for out in node.output]
        elem = helper.np_dtype_to_tensor_dtype(self.dtype)
        graph_inputs = [helper.make_tensor_value_info(name, TensorProto.INT64 if ids else elem, [BATCH, *shape])
                        for name, shape, ids in inputs]
        graph = helper.make_graph(self.nodes, "fastnn", graph_inputs,
                                  [helper.make_tensor_value_info(OUTPUT, elem, [BATCH, output_dim])],
                                  initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fastnn",
                                  doc_string=doc)
        model.ir_version = min(model.ir_version, 8)  # IR 8 goes with opset 17: older runtimes load it
        return model


def to_onnx(model: Any) -> Any:
    """The model's inference graph as a checked onnx.ModelProto (nothing written)."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError("ONNX export needs the onnx package: pip install 'fastnn[onnx]'") from err
    if not model.built:
        raise RuntimeError("cannot export a model that is not built: it has no weights yet; give the first "
                           "layer input_dim, or call model.build(n_features) or fit first")
    from onnx import helper

    graph, wiring = OnnxGraph(model.backend.dtype_name), model.graph
    inputs = [(INPUT if len(wiring.inputs) == 1 else spec.name, spec.shape, spec.kind == "int")
              for spec in wiring.inputs]
    elem = helper.np_dtype_to_tensor_dtype(graph.dtype)
    tensors = [graph.node("Cast", [name], to=elem) if ids else name for name, _, ids in inputs]  # as fit packs them
    for layer, ids in zip(model.layers, wiring.nodes):
        given = [tensors[t] for t in ids]
        tensors.append(layer.onnx_nodes(graph, given if layer.merges else given[0]))
    proto = graph.model(inputs, tensors[-1], model.output_dim, doc=repr(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Write `model` as an ONNX file at `path`; the file appears whole or not at all."""
    from fastnn.checks import check_writable
    from fastnn.saving import write_atomically

    path = Path(path)
    check_writable(path)
    data = to_onnx(model).SerializeToString()
    return write_atomically(path, lambda f: f.write(data))
