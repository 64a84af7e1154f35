"""One lookup for every "name, config dict or instance" argument (activations, losses...), and
the base of the classes it rebuilds from their configs."""

from __future__ import annotations

from typing import Any


def lookup(kind: str, spec: Any, base: type, registry: dict[str, type], aliases: dict[str, str] | None = None) -> Any:
    """An instance of `base` from `spec`: an instance (returned as is), a name, or a config dict
    {"name": ..., **kwargs}. Unknown names raise ValueError listing the valid ones."""
    if isinstance(spec, base):
        return spec
    config: dict = {}
    if isinstance(spec, dict):
        config = dict(spec)
        spec = config.pop("name", None)
    if not isinstance(spec, str):
        raise TypeError(f"{kind} must be a name or a {base.__name__}, got {type(spec).__name__}")
    key = spec.strip().lower()
    key = (aliases or {}).get(key, key)
    if key not in registry:
        valid = sorted(set(registry) | set(aliases or {}))
        raise ValueError(f"unknown {kind} {spec!r}; valid names: {', '.join(valid)}")
    return registry[key](**config)


class Configurable:
    """A base for classes rebuilt from `get_config()` (by `lookup`), whose repr shows that config."""

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"
