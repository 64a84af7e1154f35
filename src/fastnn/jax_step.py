"""A whole training step as one `jax.jit`-compiled function, for the "jax" backend.

Eager JAX dispatches each operation on its own (~20 µs each, docs/interop.md), which dominates
small networks. This engine traces the layer-by-layer engine's own step once per network and
batch shape: the same layer, loss and optimizer code, run with traced arrays in place of the
model's, then compiled by XLA into one call.
"""

from __future__ import annotations

from fastnn import engines
from fastnn.engines import LayerEngine, TrainState
from fastnn.spec import NetworkSpec


# Layers whose step does host work a trace cannot: Dropout draws its masks from a host
# generator, BatchNormalization keeps its moving statistics outside the parameters, Embedding
# checks its ids on the host.
EAGER_LAYERS = {"Dropout", "BatchNormalization", "Embedding"}


class JaxStepEngine(LayerEngine):
    """One jitted call per batch. Not for the EAGER_LAYERS nor learning-rate schedules (the
    rate is set on the host each step): those train eagerly."""

    name = "jax-jit"

    def supports(self, spec: NetworkSpec, batch_size: int) -> bool:
        return not spec.optimizer.scheduled and all(layer.kind not in EAGER_LAYERS for layer in spec.layers)

    def step(self, spec, state, x, y, weights=None):
        compiled_for, compiled = state.scratch.get(self.name, (None, None))
        if compiled_for != spec:  # kept with the model: its regularizers and clipping are traced in too
            import jax

            compiled = jax.jit(lambda *arrays: self._traced_step(spec, state, *arrays))
            state.scratch[self.name] = spec, compiled
        params, grads, slots, loss, metrics = compiled(state.params, state.slots, x, y, weights, state.iterations)
        state.params, state.grads = params, grads
        state.optimizer.state = slots
        state.iterations += 1
        return loss, metrics

    def _traced_step(self, spec: NetworkSpec, state: TrainState, params, slots, x, y, weights, iterations):
        """The layer engine's step with traced arrays standing in for the model's own; the
        model gets its arrays back afterwards, whatever happens."""
        optimizer = state.optimizer
        saved = state.params, state.grads, optimizer.state, optimizer.iterations
        try:
            state.params, optimizer.state, optimizer.iterations = params, slots, iterations
            loss, metrics = LayerEngine.step(self, spec, state, x, y, weights)
            return state.params, state.grads, optimizer.state, loss, metrics
        finally:
            state.params, state.grads, optimizer.state, optimizer.iterations = saved


engines.register("jax", JaxStepEngine)
