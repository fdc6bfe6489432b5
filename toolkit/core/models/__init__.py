"""Model definitions and checkpoints. Importing the package registers every architecture."""

from toolkit.core.models import fastwiener, unet, wiener  # noqa: F401 - each registers itself
from toolkit.core.models.config import ModelConfig
from toolkit.core.models.registry import architectures, count_parameters, create_model

__all__ = ["ModelConfig", "architectures", "count_parameters", "create_model"]
