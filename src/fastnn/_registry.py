"""One lookup for every "name, config dict or instance" argument (activations, losses...)."""

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
