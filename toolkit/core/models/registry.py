"""Architectures registered by name (timm's `create_model` pattern): checkpoints store the name,
and nothing dispatches by importing a model module."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from toolkit.core.models.config import ModelConfig

_ARCHITECTURES: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register(name: str):
    """Class decorator: make `name` buildable by `create_model` (the class takes a ModelConfig)."""

    def add(cls):
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        _ARCHITECTURES[name] = cls
        cls.arch = name
        return cls

    return add


def architectures() -> list[str]:
    """The registered names, sorted."""
    return sorted(_ARCHITECTURES)


def create_model(config: ModelConfig | None = None) -> nn.Module:
    """The network `config` describes (default: the seed U-Net); ValueError for an unknown arch."""
    config = config or ModelConfig()
    try:
        build = _ARCHITECTURES[config.arch]
    except KeyError:
        raise ValueError(f"unknown architecture {config.arch!r}: registered are "
                         f"{', '.join(architectures())}") from None
    return build(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
