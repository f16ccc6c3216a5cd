"""Resolves `provider/model-name` ids to models."""

from __future__ import annotations

from collections.abc import Iterable

from toolwire.server.errors import InvalidRequest, ModelNotFound
from toolwire.server.models.base import Model, ModelInfo, Provider


class ModelRegistry:
    """The providers this server was configured with."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    def resolve(self, model_id: str) -> Model:
        """Returns the model for `provider/model-name`; raises with a message that says what to fix."""
        if not model_id.strip():
            raise InvalidRequest(
                "start.model is empty: name a model as provider/model-name, e.g. scripted/weather"
            )
        provider_name, slash, model_name = model_id.partition("/")
        if not slash or not model_name:
            raise InvalidRequest(
                f"start.model {model_id!r} is not of the form provider/model-name, e.g. scripted/weather"
            )
        provider = self._providers.get(provider_name)
        if provider is None:
            known = ", ".join(sorted(self._providers))
            raise ModelNotFound(
                f"unknown provider {provider_name!r} in model {model_id!r}; configured: {known}"
            )
        return provider.resolve(model_name)

    def list_models(self) -> list[ModelInfo]:
        """Every model of every provider, sorted by id."""
        models = [model for provider in self._providers.values() for model in provider.list_models()]
        return sorted(models, key=lambda model: model.model_id)
