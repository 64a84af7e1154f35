"""fastnn's layers, with Keras's names and arguments: flat ones (`Dense`, `Activation`,
`Dropout`), convolutions (`Conv2D`, `Conv1D`), pooling (`MaxPooling2D`, `AveragePooling2D`,
`GlobalAveragePooling2D`), reshaping (`Flatten`, `Reshape`), normalization
(`BatchNormalization`, `LayerNormalization`), `Embedding`, and the functional API's merging
layers (`Add`, `Concatenate`). Images are channels last."""

from __future__ import annotations

from fastnn.layers.convolution import Conv1D, Conv2D
from fastnn.layers.core import Activation, Backprop, Dense, Dropout, Layer, as_shape
from fastnn.layers.embedding import Embedding
from fastnn.layers.merging import Add, Concatenate
from fastnn.layers.normalization import BatchNormalization, LayerNormalization
from fastnn.layers.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D
from fastnn.layers.reshaping import Flatten, Reshape

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Dense, Activation, Dropout, Conv2D, Conv1D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten,
    Reshape, BatchNormalization, LayerNormalization, Embedding, Add, Concatenate)}

__all__ = ["Layer", "Backprop", "as_shape", "from_config", "LAYERS", *LAYERS]


def from_config(config: dict) -> Layer:
    """A layer from `get_config()` output."""
    config = dict(config)
    cls = LAYERS.get(config.pop("class", None))
    if cls is None:
        raise ValueError(f"unknown layer config {config!r}; known classes: {', '.join(LAYERS)}")
    return cls(**config)
