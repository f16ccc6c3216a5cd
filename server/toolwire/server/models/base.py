"""The shape every model and provider has. Adapters implement it; the loop depends only on it."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from toolwire.server.conversation import ModelCall
from toolwire.server.events import ModelEvent


class Model(Protocol):
    """One model of one provider."""

    @property
    def model_id(self) -> str:
        """The model's id as `provider/model-name`."""
        ...

    def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        """Streams one model call. Closing the iterator early must stop the provider stream at once."""
        ...


@dataclass(slots=True, frozen=True)
class ModelInfo:
    """A model a provider can serve, for ListModels."""

    model_id: str
    provider: str
    description: str


class Provider(Protocol):
    """A source of models, reached by the `provider/` prefix of a model id."""

    @property
    def name(self) -> str:
        """The provider prefix, e.g. `scripted`."""
        ...

    def resolve(self, model_name: str) -> Model:
        """Returns the model; raises ModelNotFound with a message naming what exists."""
        ...

    def list_models(self) -> list[ModelInfo]:
        """The models this provider can serve."""
        ...
