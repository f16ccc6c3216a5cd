"""Resolves model ids (`provider/model-name`, or an alias) to models, with retries and fallbacks."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping

from toolwire.server.conversation import ModelCall
from toolwire.server.errors import InvalidRequest, ModelNotFound, ToolwireError
from toolwire.server.events import ModelEvent
from toolwire.server.models.base import Model, ModelInfo, Provider
from toolwire.server.models.resilience import ResilientModel, RetryPolicy


class ModelRegistry:
    """The providers and aliases this server was configured with."""

    def __init__(
        self,
        providers: Iterable[Provider],
        aliases: Mapping[str, tuple[str, ...]] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self._aliases = dict(aliases or {})
        self._retry = retry or RetryPolicy()

    @property
    def providers(self) -> tuple[Provider, ...]:
        """Every configured provider."""
        return tuple(self._providers.values())

    def resolve(self, model_id: str) -> Model:
        """The model for `model_id`, wrapped with the retry policy (and its fallback chain, for an
        alias that names several models); raises with a message that says what to fix."""
        chain = self._aliases.get(model_id)
        if chain is None:
            return ResilientModel(model_id, [self._resolve_plain(model_id)], self._retry)
        models: list[Model] = []
        for item in chain:
            try:
                models.append(self._resolve_plain(item))
            except ToolwireError as error:  # e.g. no key for one provider: the chain goes on without it
                models.append(_Failing(item, error))
        return ResilientModel(model_id, models, self._retry)

    def _resolve_plain(self, model_id: str) -> Model:
        if not model_id.strip():
            raise InvalidRequest(
                "start.model is empty: name a model as provider/model-name, e.g. scripted/weather"
            )
        provider_name, slash, model_name = model_id.partition("/")
        if not slash or not model_name:
            aliases = f"; aliases: {', '.join(sorted(self._aliases))}" if self._aliases else ""
            raise InvalidRequest(
                f"start.model {model_id!r} is not of the form provider/model-name, e.g. scripted/weather"
                f"{aliases}"
            )
        provider = self._providers.get(provider_name)
        if provider is None:
            known = ", ".join(sorted(self._providers))
            raise ModelNotFound(
                f"unknown provider {provider_name!r} in model {model_id!r}; configured: {known}"
            )
        return provider.resolve(model_name)

    def list_models(self) -> list[ModelInfo]:
        """Every model of every provider, then the aliases, sorted by id."""
        models = [model for provider in self._providers.values() for model in provider.list_models()]
        models += [
            ModelInfo(alias, "alias", "alias of " + ", then ".join(chain))
            for alias, chain in self._aliases.items()
        ]
        return sorted(models, key=lambda model: model.model_id)


class _Failing:
    """A chain member that could not be resolved: its calls fail with that error, so the chain
    falls back past it (and reports it if it was the last)."""

    def __init__(self, model_id: str, error: ToolwireError) -> None:
        self.model_id = model_id
        self._error = error

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        raise self._error
        yield  # an async generator, like every model
