"""`Model`: layers wired as a graph (Keras's functional API) with compile / fit / evaluate /
predict, and `Sequential`, the linear special case: a stack of layers, one after another.

A model lives on the backend that was active when it was created (or the one named in
`model.to(...)`); its weights, optimizer state and every array of a step stay there.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from fastnn import layers as layers_module
from fastnn import distributed as data_parallel
from fastnn import losses, optimizers, training
from fastnn.graph import Graph, pack_inputs, trace
from fastnn.training import INFERENCE_BATCH
from fastnn.backend import Backend, host_rng, resolve, to_numpy
from fastnn.callbacks import Callback, History, progress
from fastnn.checks import check_count, check_features, check_number, check_sample_weights, check_targets
from fastnn.engines import TrainState
from fastnn.activations import UnsupportedLayerError
from fastnn.layers import Dense, Layer
from fastnn.spec import NetworkSpec, describe


class Model:
    """Layers wired from `inputs` to `outputs`, Keras's functional API:

        x = fastnn.Input(shape=(13,)); c = fastnn.Input(shape=(), dtype="int64")
        h = Concatenate()([Dense(64, "relu")(x), Flatten()(Embedding(100, 8)(c))])
        model = fastnn.Model(inputs=[x, c], outputs=Dense(1)(h), seed=0)

    `inputs` is one Input, a list, or a dict by name; fit, evaluate and predict then take x as
    one array, a list in that order, or a dict by input name. `seed` fixes the initial weights
    (identical on every backend) and the shuffling order; `dtype` is "float32" (default) or
    "float64". The weights are made here: a Model is built from the start."""

    def __init__(self, inputs: Any, outputs: Any, seed: int | None = None, dtype: Any = None) -> None:
        self._start(seed, dtype)
        layers, self._graph, _ = trace(inputs, outputs)
        self.layers = layers
        self._build_layers()

    def _start(self, seed: int | None, dtype: Any) -> None:
        """The state every model starts with: backend, generators, no layers, not compiled."""
        self.backend: Backend = resolve(None, dtype)
        self.layers: list[Layer] = []
        self.seed = seed
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng, self._shuffle_rng = host_rng(init_seq), host_rng(shuffle_seq)
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: losses.Loss | None = None
        self.metric_names: list[str] = []
        self.stop_training = False
        self.built = False
        self._loss_buffers: dict = {}  # the loss kernels' scratch arrays, kept between steps
        self._state: TrainState | None = None
        self._forget_spec()

    @property
    def graph(self) -> Graph:
        """Which tensors each layer takes (fastnn.graph.Graph)."""
        return self._graph

    def _build_layers(self) -> None:
        """Create every layer's weights, in running order, for the graph's input shapes."""
        shapes = [spec.shape for spec in self.graph.inputs]
        for layer, ids in zip(self.layers, self.graph.nodes):
            given = [shapes[t] for t in ids]
            layer.build(given if layer.merges else given[0], self._init_rng, self.backend)
            shapes.append(layer.output_shape)
        self.built = True
        self._forget_spec()
        if self.optimizer is not None:
            self.optimizer.build(self.params)

    def compile(self, optimizer: Any = "sgd", loss: Any = "mse", metrics: Sequence[Any] | None = None) -> None:
        """Choose the optimizer, the loss and the metrics reported by fit/evaluate (default:
        accuracy for the cross-entropy losses, none for a regression loss)."""
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is None:
            metrics = ["accuracy"] if self.loss.name.endswith("crossentropy") else []
        if isinstance(metrics, str):
            raise TypeError(f"metrics must be a list of names, got the string {metrics!r}; write [{metrics!r}]")
        self.metric_names = list(metrics)
        self._forget_spec()
        if self.built:
            self.optimizer.build(self.params)

    # -- parameters ------------------------------------------------------------------------

    @property
    def params(self) -> list[Any]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[Any]:
        return [g for layer in self.layers for g in layer.grads]

    @property
    def input_shape(self) -> Any:
        """The shape of one input sample, e.g. (28, 28, 1) or (features,); a list of them for a
        model of several inputs."""
        shapes = [spec.shape for spec in self.graph.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_dim(self) -> int | None:
        """The number of values in one input sample (every input's, for several)."""
        return self.graph.width

    @property
    def input_names(self) -> list[str]:
        """The inputs' names: the keys of a dict x."""
        return [spec.name for spec in self.graph.inputs]

    @property
    def output_dim(self) -> int:
        return self.layers[-1].output_dim

    def get_weights(self) -> list[np.ndarray]:
        """A copy of every parameter as a host NumPy array: [W1, b1, W2, b2, ...] per layer, its
        trained parameters then its kept state, in Keras's order (BatchNormalization: gamma,
        beta, moving_mean, moving_variance); a copy, since training updates them in place."""
        return [np.array(to_numpy(p), copy=True) for layer in self.layers for p in layer.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace every parameter; host or backend arrays, same order and shapes as get_weights."""
        self._require_built()
        current = [p for layer in self.layers for p in layer.weights]
        if len(weights) != len(current):
            raise ValueError(f"expected {len(current)} weight arrays, got {len(weights)}")
        new = []
        for i, (w, p) in enumerate(zip(weights, current)):
            w = self.backend.asarray(w, p.dtype, copy=True)  # converts host or foreign arrays
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"weight {i} has shape {tuple(w.shape)}, expected {tuple(p.shape)}")
            new.append(w)
        for layer in self.layers:
            count, kept = len(layer.params), len(layer.state)
            layer.set_params(new[:count])
            if kept:
                layer.set_state(new[count:count + kept])
            new = new[count + kept:]

    def to(self, backend: str | Backend, device: str | None = None) -> "Model":
        """Move weights and optimizer state, exactly, to another backend or device ("numpy",
        "cupy", "torch", "jax"; device "cuda", "mps"...); returns self."""
        target = resolve(backend, self.backend.dtype_name, device=device)
        move = lambda a: target.asarray(a, target.dtype, copy=True)  # noqa: E731
        for layer in self.layers:
            layer.backend = target
            layer.set_params([move(p) for p in layer.params])
            layer.set_state([move(p) for p in layer.state])
            layer.grads = []
        if self.optimizer is not None:
            self.optimizer.map_state(move)
        self._loss_buffers.clear()  # scratch arrays of the old backend's kernels
        self.backend = target
        return self

    def count_params(self) -> int:
        """Every number the model keeps: trained parameters and kept state, as Keras counts."""
        return sum(math.prod(p.shape) for layer in self.layers for p in layer.weights)

    def summary(self, print_fn: Any = print) -> str:
        """A table of layers, output shapes and parameter counts (printed and returned); a
        graph's rows are numbered and say which inputs or rows each layer takes."""
        self._require_built()
        graph, k = self.graph, len(self.graph.inputs)
        labels = [repr(layer) if graph.linear else f"{i}: {layer!r}" for i, layer in enumerate(self.layers)]
        width = max(34, *(len(label) + 2 for label in labels))
        rows = [f"{'layer':<{width}}{'output':<18}{'params':>10}" + ("" if graph.linear else "  takes"),
                "-" * (width + 28)]
        for label, layer, ids in zip(labels, self.layers, graph.nodes):
            count = sum(math.prod(p.shape) for p in layer.weights)
            takes = "" if graph.linear else "  " + ", ".join(self.input_names[t] if t < k else str(t - k) for t in ids)
            rows.append(f"{label:<{width}}{str((None, *layer.output_shape)):<18}{count:>10,}{takes}")
        rows += ["-" * (width + 28), f"total params: {self.count_params():,}   backend: {self.backend.name}, "
                 f"{self.backend.dtype_name}"]
        text = "\n".join(rows)
        if print_fn:
            print_fn(text)
        return text

    # -- what engines train ----------------------------------------------------------------

    @property
    def spec(self) -> NetworkSpec:
        """The frozen description of this network that engines train from; rebuilt after
        compile, add and build, and when an optimizer hyper-parameter changes."""
        revision = getattr(self.optimizer, "revision", None)
        if self._spec is None or self._spec_revision != revision:
            self._require_built()
            self._spec = describe(self.layers, self.graph, self.backend.dtype_name, self.loss, self.optimizer,
                                  self.metric_names)
            self._spec_revision = revision
        return self._spec

    def _forget_spec(self) -> None:
        self._spec: NetworkSpec | None = None
        self._spec_revision: int | None = None

    def train_state(self) -> TrainState:
        """This model's parameters, gradients and optimizer state as engines take them (the
        arrays themselves); gradients start as zeros where a layer has none of its dtype yet."""
        self._require_compiled()
        for layer in self.layers:
            if len(layer.grads) != len(layer.params):  # none yet (new, or moved by `to`)
                layer.grads = [self.backend.xp.zeros_like(p) for p in layer.params]
        if self._state is None or self._state.optimizer is not self.optimizer:
            self._state = TrainState(self.layers, self.optimizer, self._loss_buffers)
        return self._state

    def prepare(self, x: Any, y: Any = None) -> tuple[Any, Any]:
        """(x, y) checked and converted for this model: arrays of its backend and dtype, y shaped
        as the loss wants it; builds the model from x's width if it is not built yet."""
        x = self._check_inputs(x)
        if y is not None:
            if len(self.layers[-1].output_shape) != 1:
                raise ValueError(f"the model outputs samples of shape {self.layers[-1].output_shape}, but a loss "
                                 "compares flat rows: end the model with Flatten() (and a Dense layer)")
            y = check_targets(y, self.backend, x.shape[0], self.output_dim, self.loss)
        return x, y

    def _check_inputs(self, x: Any) -> Any:
        """x (one array, a list or a dict of them) as the one array the engines take."""
        return pack_inputs(self.graph, x, self.backend)

    # -- training --------------------------------------------------------------------------

    def _require_built(self) -> None:
        if not self.built:
            raise RuntimeError("the model is not built yet, so no layer knows its shapes: give Sequential "
                               "input_shape=... (or the first layer input_dim=/input_shape=), or call fit or build")

    def _require_compiled(self) -> None:
        if self.loss is None:
            raise RuntimeError("call model.compile(optimizer, loss) before fit or evaluate")

    def fit(self, x: Any, y: Any, epochs: int = 1, batch_size: int | None = 32, shuffle: bool = True,
            validation_data: tuple[Any, Any] | None = None, callbacks: Sequence[Callback] | None = None,
            verbose: int = 1, nan_guard: bool = True, validation_split: float = 0.0, initial_epoch: int = 0,
            sample_weight: Any = None, class_weight: dict | None = None, distributed: str | None = None,
            sync_every: int | None = None) -> History:
        """Train for `epochs` passes over (x, y), counting from `initial_epoch` (Keras's meaning:
        `epochs` is the index to stop at). `batch_size=None` is full batch, 1 is online SGD.
        `validation_split` holds out the last fraction of the rows, before shuffling, as
        validation data. `sample_weight` (one per row) and `class_weight` ({class: weight}) scale
        each sample's share of the loss (Keras's mean over the batch). Returns a History whose
        `.history` maps "loss", metrics and "val_*" to lists. verbose=1 shows a progress bar (a
        ProgressBar) on a terminal and a line per second elsewhere (a log file), verbose=2 one
        line per epoch (EpochLog), verbose=0 nothing. With `nan_guard`, a NaN/Inf loss stops training with a
        warning that names the epoch and batch. After fastnn.distributed.init() in a launch of
        several ranks, training is data-parallel: every rank passes the same arrays
        (`distributed="sharded"`: each its own part of the data, `batch_size` still global);
        `sync_every=k`: each rank steps alone on its rows and the ranks average the model every
        k steps (for small batches, where a step costs less than an all-reduce)."""
        sharded = _check_distributed(distributed)
        with data_parallel.together("fit"):
            self._require_compiled()
            epochs = check_count(epochs, "epochs", minimum=0)
            initial_epoch = check_count(initial_epoch, "initial_epoch", minimum=0)
            batch_size = None if batch_size is None else check_count(batch_size, "batch_size")
            sync_every = None if sync_every is None else check_count(sync_every, "sync_every")
            hooks = [*_check_callbacks(callbacks), *(progress(verbose) if data_parallel.is_root() else [])]
            x, y = self.prepare(x, _require_targets(y, "fit"))
            weights = check_sample_weights(sample_weight, class_weight, y, self.backend)
            (x, y), validation = _split(x, y, validation_split, validation_data is not None)
            weights = None if weights is None else weights[:x.shape[0], ...]
            if validation_data is not None:
                validation = self.prepare(*_pair(validation_data))
            self.optimizer.build(self.params)
        rows = data_parallel.total_rows(x.shape[0]) if sharded else x.shape[0]  # the global batch's bound
        batch_size = rows if batch_size is None else min(batch_size, rows)
        if data_parallel.active():
            settings = {"epochs": epochs, "initial_epoch": initial_epoch, "batch_size": batch_size, "shuffle": shuffle,
                        "sync_every": sync_every}
            data_parallel.start_together(self, self._shuffle_rng, x.shape[0], sharded, settings)
        return training.fit(self, x, y, range(initial_epoch, epochs), batch_size, shuffle, validation, hooks,
                            nan_guard, self._shuffle_rng, weights,
                            data_parallel.engine_for(self.backend, sharded, sync_every))

    def train_on_batch(self, x: Any, y: Any) -> float:
        """One optimizer step on (x, y); returns the loss before the step. Under
        fastnn.distributed, a data-parallel step over every rank's (x, y) together, the first
        one from rank 0's weights and optimizer state."""
        with data_parallel.together("train_on_batch"):
            self._require_compiled()
            x, y = self.prepare(x, _require_targets(y, "train_on_batch"))
            self.optimizer.build(self.params)
        if data_parallel.active():
            data_parallel.start_once(self, self._shuffle_rng)
        return float(training.train_step(self, x, y, data_parallel.engine_for(self.backend, sharded=True))[0])

    def loss_and_gradients(self, x: Any, y: Any, sample_weight: Any = None) -> tuple[float, list[np.ndarray]]:
        """(loss, [dW1, db1, ...] as host arrays) over all of (x, y) at the current weights, with
        no optimizer step: what an outside optimizer (SciPy's L-BFGS, say) needs. Both include
        the weight penalties, as fit's loss does; `sample_weight` as in fit."""
        self._require_compiled()
        x, y = self.prepare(x, _require_targets(y, "loss_and_gradients"))
        weights = check_sample_weights(sample_weight, None, y, self.backend)
        layer_engine = self.backend.engines[-1]  # covers every network; computes gradients without stepping
        loss, _ = layer_engine.gradients(self.spec, self.train_state(), x, y, weights)
        return float(loss), [np.array(to_numpy(g), copy=True) for g in self.grads]

    def evaluate(self, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0,
                 distributed: str | None = None) -> dict[str, float]:
        """{"loss": ..., metric: ...} over (x, y), without training, in batches of `batch_size`
        rows (default: INFERENCE_BATCH); verbose=1 shows a progress bar over the batches. Under
        fastnn.distributed, each rank evaluates its share of the rows (`distributed="sharded"`:
        its own rows) and the results are reduced."""
        sharded = _check_distributed(distributed)
        with data_parallel.together("evaluate"):
            self._require_compiled()
            batch_size = INFERENCE_BATCH if batch_size is None else check_count(batch_size, "batch_size")
            x, y = self.prepare(x, _require_targets(y, "evaluate"))
        return training.evaluate(self, x, y, batch_size, verbose=bool(verbose) and data_parallel.is_root(),
                                 engine=data_parallel.engine_for(self.backend, sharded))

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> Any:
        """The model's outputs for x, as an array of the model's backend, computed in batches of
        `batch_size` rows (default: INFERENCE_BATCH); verbose=1 shows a progress bar."""
        step = INFERENCE_BATCH if batch_size is None else check_count(batch_size, "batch_size")
        x, _ = self.prepare(x)
        n = x.shape[0]
        starts = tqdm(range(0, n, step), unit="batch", disable=not verbose)
        parts = [self._forward(x[i:min(i + step, n), ...]) for i in starts]
        return parts[0] if len(parts) == 1 else self.backend.xp.concat(parts, axis=0)

    def __call__(self, x: Any) -> Any:
        """model(x) is model.predict(x), for Keras and PyTorch habits (inference: no dropout,
        no gradients; docs/guide/training.md#calling-a-model)."""
        return self.predict(x)

    def _forward(self, x: Any) -> Any:
        return self.graph.forward(self.layers, x, self.backend.xp)[0]

    def save(self, path: Any) -> Any:
        """Write architecture, weights and optimizer state to one .npz file, or .safetensors by
        the suffix (see fastnn.load)."""
        from fastnn.saving import save

        return save(self, path)

    def load_weights(self, path: Any) -> None:
        """Set the weights from a .safetensors file in PyTorch's naming: one from model.save, or
        safetensors.torch.save_file(module.state_dict()) of the module fastnn.from_torch reads."""
        from fastnn.saving import load_weights

        load_weights(self, path)

    def export_onnx(self, path: Any) -> Any:
        """Write the inference graph as an ONNX file: input "input" (batch, features), output
        "output", dynamic batch axis, opset fastnn.onnx_export.OPSET (docs/deploy.md)."""
        from fastnn.onnx_export import export_onnx

        return export_onnx(self, path)

    def to_torch(self) -> Any:
        """A torch.nn.Sequential with the same layers and a copy of the weights (docs/deploy.md)."""
        from fastnn.torch_interop import to_torch

        if not self.graph.linear:
            raise UnsupportedLayerError("to_torch converts a stack of layers (torch.nn.Sequential); this model is a "
                                        "graph: export it with model.export_onnx(path), or save it with model.save")
        return to_torch(self)

    def __reduce__(self) -> tuple:
        """Pickle as the arrays a saved file holds, unpickled onto the same backend and device."""
        from fastnn.saving import restore, state_arrays

        return restore, (state_arrays(self), self.backend.name, self.backend.device_name)

    def get_config(self) -> dict:
        return {"class": "Model", "layers": [layer.get_config() for layer in self.layers],
                "graph": self.graph.get_config(), "seed": self.seed, "dtype": self.backend.dtype_name}

    @classmethod
    def from_config(cls, config: dict) -> "Model":
        """The model `get_config` describes, with fresh weights."""
        model = cls.__new__(cls)
        model._start(config.get("seed"), config.get("dtype"))
        model.layers = [layers_module.from_config(c) for c in config["layers"]]
        model._graph = Graph.from_config(config["graph"])
        if len(model.graph.nodes) != len(model.layers):
            raise ValueError(f"the model config has {len(model.layers)} layers but its graph {len(model.graph.nodes)}")
        model._build_layers()
        return model

    def __repr__(self) -> str:
        return f"Model(inputs={self.input_names}, layers={len(self.layers)}, backend={self.backend.name!r})"


class Sequential(Model):
    """Layers applied in order: a Model whose graph is a chain. `seed` fixes the initial
    weights (identical on every backend) and the shuffling order; `dtype` is "float32"
    (default) or "float64". It builds when it knows its input shape: from `input_shape`
    (or `input_dim`), the first layer's, or the first data it sees."""

    def __init__(self, layers: Iterable[Layer] = (), seed: int | None = None, dtype: Any = None,
                 input_shape: Any = None, input_dim: int | None = None) -> None:
        self._start(seed, dtype)
        self._input_shape: tuple[int, ...] | None = None
        for layer in layers:
            self.add(layer)
        if input_shape is not None or input_dim is not None:
            if input_shape is not None and input_dim is not None:
                raise ValueError("give input_shape or input_dim, not both (input_dim=k is input_shape=(k,))")
            shape = layers_module.as_shape(input_shape if input_shape is not None else input_dim, "input_shape")
            if not self.built or self.input_shape != shape:
                self.build(shape)

    @property
    def graph(self) -> Graph:
        if self._input_shape is None:
            self._require_built()
        return Graph.chain(self._input_shape, len(self.layers))

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one input sample, e.g. (28, 28, 1) or (features,); None until built."""
        return self.layers[0].input_shape if self.layers else None

    @property
    def input_dim(self) -> int | None:
        """The number of values in one input sample (a flat row's features)."""
        return self.layers[0].input_dim if self.layers else None

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a fastnn layer, got {type(layer).__name__}")
        if layer.merges:
            raise TypeError(f"{layer!r} joins several tensors, which a Sequential stack has not: build a fastnn.Model "
                            "with the functional API (docs/guide/functional.md)")
        self.layers.append(layer)
        self._forget_spec()
        if self.built:  # extend a built model: build just the new layer
            layer.build(self.layers[-2].output_shape, self._init_rng, self.backend)
            if self.optimizer is not None:
                self.optimizer.build(self.params)
        elif len(self.layers) == 1 and layer.input_shape is not None:
            self.build(layer.input_shape)

    def build(self, input_shape: Any) -> None:
        """Create every layer's weights for samples of `input_shape`: a tuple such as
        (28, 28, 1) for images, channels last, or an int, the features of a flat row."""
        if not self.layers:
            raise ValueError("the model has no layers; add a Dense layer first")
        shape = layers_module.as_shape(input_shape, "input_shape")
        if shape == ():
            raise ValueError("a Sequential model takes samples of at least one value; for one id per sample, use "
                             "fastnn.Input(shape=(), dtype='int64') and a fastnn.Model")
        self._input_shape = shape
        self._build_layers()

    def _check_inputs(self, x: Any) -> Any:
        x = check_features(x, self.backend, self.input_shape if self.built else None)
        if not self.built:
            self.build(tuple(x.shape[1:]))
        return x

    @classmethod
    def from_architecture(cls, architecture: Sequence[dict], seed: int | None = None, dtype: Any = None,
                          kernel_initializer: Any = "glorot_uniform") -> "Sequential":
        """A model from the tutorials' list-of-dicts format:
        `[{"input_dim": 2, "output_dim": 25, "activation": "relu"}, ...]`."""
        dense_layers = []
        for i, spec in enumerate(architecture):
            missing = {"input_dim", "output_dim"} - set(spec)
            if missing:
                raise ValueError(f"layer {i} of the architecture lacks {sorted(missing)}: {spec}")
            if i and spec["input_dim"] != architecture[i - 1]["output_dim"]:
                raise ValueError(f"layer {i} has input_dim {spec['input_dim']} but layer {i - 1} "
                                 f"outputs {architecture[i - 1]['output_dim']}")
            dense_layers.append(Dense(spec["output_dim"], spec.get("activation"),
                                      kernel_initializer=spec.get("kernel_initializer", kernel_initializer),
                                      input_dim=spec["input_dim"] if i == 0 else None))
        return cls(dense_layers, seed=seed, dtype=dtype)

    def get_config(self) -> dict:
        shape = self.input_shape
        return {"class": "Sequential", "layers": [layer.get_config() for layer in self.layers], "seed": self.seed,
                "dtype": self.backend.dtype_name, "input_dim": self.input_dim if shape and len(shape) == 1 else None,
                "input_shape": None if shape is None else list(shape)}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        model = cls([layers_module.from_config(c) for c in config["layers"]], seed=config.get("seed"),
                    dtype=config.get("dtype"))
        shape = config.get("input_shape") or config.get("input_dim")
        if not model.built and shape:
            model.build(shape)
        return model

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r}, backend={self.backend.name!r})"


def from_config(config: dict) -> Model:
    """The Model or Sequential that `get_config` described (files from before fastnn.Model
    describe a Sequential without saying so)."""
    return (Model if config.get("class") == "Model" else Sequential).from_config(config)


def _pair(validation_data: Any) -> tuple[Any, Any]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (x_val, y_val)")
    x_val, y_val = validation_data
    return _require_targets(x_val, "validation_data"), _require_targets(y_val, "validation_data")


def _split(x: Any, y: Any, fraction: Any, has_validation_data: bool) -> tuple[tuple[Any, Any], tuple | None]:
    """((x, y) to train on, (x, y) to validate on or None): the last `fraction` of the rows, as
    Keras takes them (before any shuffling)."""
    fraction = check_number(fraction, "validation_split")
    if fraction == 0:
        return (x, y), None
    if not 0 < fraction < 1:
        raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
    if has_validation_data:
        raise ValueError("give validation_data or validation_split, not both")
    split_at = int(math.floor(x.shape[0] * (1 - fraction)))
    if split_at == 0:  # floor keeps at least one validation row
        raise ValueError(f"validation_split={fraction} of {x.shape[0]} rows leaves an empty training set")
    return (x[:split_at, ...], y[:split_at, ...]), (x[split_at:, ...], y[split_at:, ...])


def _check_distributed(mode: str | None) -> bool:
    """Whether data-parallel work takes data sharded per rank ("sharded") or the same on every
    rank (None, "replicated")."""
    if mode not in (None, "replicated", "sharded"):
        raise ValueError(f"distributed must be None, 'replicated' or 'sharded', got {mode!r}")
    return mode == "sharded"


def _require_targets(y: Any, where: str) -> Any:
    if y is None:
        raise ValueError(f"{where} needs targets: got None where an array was expected")
    return y


def _check_callbacks(callbacks: Any) -> list[Callback]:
    callbacks = list(callbacks or ())
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be fastnn.Callback instances, got {callback!r}; wrap a function "
                            "as fastnn.LambdaCallback(on_epoch_end=fn)")
    return callbacks
