"""`NetworkSpec`: a frozen, public description of a compiled model — what every engine trains from.

The model builds one per `compile`/`add`/`build` (and when an optimizer hyper-parameter
changes); engines and kernels read the spec and the arrays they are handed, never the model.
The integer codes here are what compiled code switches on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Sequence

from fastnn import metrics


class Act(IntEnum):
    """Activation codes for compiled code (softmax has none: it only runs fused into a loss)."""

    LINEAR = 0
    RELU = 1
    LEAKY_RELU = 2
    SIGMOID = 3
    TANH = 4
    SWISH = 5
    GELU = 6


class LossCode(IntEnum):
    """The loss heads compiled code computes: squared error, or cross-entropy on logits."""

    MSE = 0
    BCE_LOGITS = 1
    CCE_LOGITS = 2


class MetricCode(IntEnum):
    """The metrics compiled code accumulates."""

    NONE = 0
    BINARY_ACCURACY = 1
    CATEGORICAL_ACCURACY = 2


# The metrics compiled code computes, by function.
METRIC_CODES = {metrics.binary_accuracy: MetricCode.BINARY_ACCURACY,
                metrics.categorical_accuracy: MetricCode.CATEGORICAL_ACCURACY}


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    code: Act | None  # None: no compiled code computes it
    alpha: float = 0.0  # leaky ReLU's slope; 0 for the others


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # the layer's class name: "Dense", "Activation", "Conv2D"...
    units: int  # the values in one output sample
    activation: ActivationSpec
    params: int  # how many parameter arrays the layer owns (Dense: W and b, or W alone)
    regularized: bool = False  # a weight penalty adds to the loss
    weights: int = 0  # how many numbers its parameters hold
    output_shape: tuple[int, ...] = ()  # one output sample's shape
    whole_batch: bool = False  # it computes statistics of the batch (BatchNormalization): no row blocks
    parallel_rows: bool = False  # its row blocks may run on several threads at once (fastnn.row_blocks)


@dataclass(frozen=True)
class LossHead:
    """The loss the model applies to its last layer's output. `fused`: the last activation
    (sigmoid, softmax) is folded into the loss, which then takes the logits."""

    loss: Any  # a fastnn.losses.Loss, in the form applied (from_logits when fused)
    fused: bool
    code: LossCode | None  # None: no compiled code computes it


@dataclass(frozen=True)
class MetricSpec:
    name: str
    function: Callable[[Any, Any], Any]
    code: MetricCode | None


@dataclass(frozen=True)
class OptimizerSpec:
    """The update rule ("sgd", "momentum", "nesterov", "adam", or another optimizer's name) and
    the hyper-parameters compiled code reads."""

    rule: str
    lr: float
    momentum: float = 0.0
    beta_1: float = 0.0
    beta_2: float = 0.0
    epsilon: float = 0.0
    slots: tuple[str, ...] = ()  # the state arrays each parameter carries, in order
    clipped: bool = False  # gradients are clipped before the update
    scheduled: bool = False  # the learning rate follows a schedule, step by step


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: engines key caches on it
class NetworkSpec:
    widths: tuple[int, ...]  # input width, then each layer's output width (values per sample)
    layers: tuple[LayerSpec, ...]
    dtype: str  # "float32" or "float64"
    head: LossHead | None = None  # None until compiled
    optimizer: OptimizerSpec | None = None
    metrics: tuple[MetricSpec, ...] = ()
    graph: Any = None  # the fastnn.graph.Graph: which tensors each layer takes

    @functools.cached_property
    def parameter_count(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @functools.cached_property
    def regularized(self) -> bool:
        return any(layer.regularized for layer in self.layers)

    @functools.cached_property
    def whole_batch(self) -> bool:
        return any(layer.whole_batch for layer in self.layers)

    @functools.cached_property
    def rows_in_parallel(self) -> bool:
        """Whether the row blocks of a batch may be computed at once, on several threads."""
        return all(layer.parallel_rows for layer in self.layers)

    @functools.cached_property
    def dense_only(self) -> bool:
        """A chain of Dense layers on one input: what the compiled and fused Dense engines train."""
        return self.graph.linear and all(layer.kind == "Dense" for layer in self.layers)


def parallel_rows(layer: Any) -> bool:
    """Whether threads may run `layer` on different row blocks at once: one of fastnn's own
    layers (their copies share nothing mutable), which neither sees the whole batch nor draws
    random numbers (their order would depend on timing)."""
    own = type(layer).__module__.startswith("fastnn.")
    return own and not getattr(layer, "needs_whole_batch", False) and not getattr(layer, "draws_random", False)


def describe(layers: Sequence[Any], graph: Any, dtype: str, loss: Any = None, optimizer: Any = None,
             metric_names: Sequence[Any] = ()) -> NetworkSpec:
    """The spec of built `layers` wired as `graph` (a fastnn.graph.Graph), compiled with loss,
    optimizer and metrics."""
    widths = (graph.width, *(layer.output_dim for layer in layers))
    layer_specs = tuple(LayerSpec(type(layer).__name__, layer.output_dim, activation_spec(layer.activation),
                                  len(layer.params), layer.regularized,
                                  sum(math.prod(p.shape) for p in layer.params), tuple(layer.output_shape),
                                  bool(getattr(layer, "needs_whole_batch", False)),
                                  parallel_rows(layer))
                        for layer in layers)
    for i, layer in enumerate(layer_specs):
        if layer.activation.name == "softmax" and layer.units == 1:
            raise ValueError(f"layer {i} is a softmax over 1 unit, which always outputs 1: nothing can be learned. "
                             "For two classes use Dense(1, 'sigmoid') with binary_crossentropy, or Dense(2, 'softmax') "
                             "with categorical_crossentropy")
    if loss is None:
        return NetworkSpec(widths, layer_specs, dtype, graph=graph)
    fused = loss.fused_with(layers[-1].activation)
    head = LossHead(fused, True, fused.code) if fused is not None else LossHead(loss, False, loss.code)
    resolved = (metrics.get(name, widths[-1]) for name in metric_names)
    metric_specs = tuple(MetricSpec(name, fn, METRIC_CODES.get(fn)) for name, fn in resolved)
    return NetworkSpec(widths, layer_specs, dtype, head, optimizer.spec(), metric_specs, graph)


def activation_spec(activation: Any) -> ActivationSpec:
    return ActivationSpec(activation.name, activation.code, float(activation.alpha))
