"""What tokens cost: list prices from `genai-prices`, with a local override file.

`genai-prices` (pydantic's maintained, versioned price database) knows each
provider's input, cached-input, cache-write (5-minute and 1-hour) and output
rates, long-context tiers included, and ships its data inside the wheel, so
pricing never needs the network. Models it does not know (fine-tunes, a vLLM
deployment) get their rates from a TOML file:

    [models."acme-7b"]      # USD per million tokens
    input = 0.20
    cached_input = 0.02     # default: input
    cache_write_5m = 0.25   # default: input
    cache_write_1h = 0.40   # default: cache_write_5m
    output = 0.60

An unknown model is never an error: its cost is zero and `priced` is False.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenopt.dialects.base import Usage
from tokenopt.exceptions import ConfigError
from tokenopt.memo import short_key_cache

PER_MILLION = 1_000_000


class ModelPrice(BaseModel):
    """USD per million tokens for one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write_5m: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)

    def cost(self, usage: Usage) -> Cost:
        write_1h = usage.cache_write_1h_tokens
        write_5m = usage.cache_write_tokens - write_1h
        uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        cached = self.input if self.cached_input is None else self.cached_input
        rate_5m = self.input if self.cache_write_5m is None else self.cache_write_5m
        rate_1h = rate_5m if self.cache_write_1h is None else self.cache_write_1h
        input_usd = (uncached * self.input + usage.cached_input_tokens * cached
                     + write_5m * rate_5m + write_1h * rate_1h) / PER_MILLION
        output_usd = usage.output_tokens * self.output / PER_MILLION
        return Cost(input_usd, output_usd, input_usd + output_usd, priced=True)


@dataclass(frozen=True, slots=True)
class Cost:
    """The dollars of one request; `output_usd` includes reasoning (billed as output)."""

    input_usd: float = 0.0
    output_usd: float = 0.0
    total_usd: float = 0.0
    priced: bool = False


UNPRICED = Cost()


class PriceBook:
    """Prices for any model: the override file first, then `genai-prices`."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self.overrides = dict(overrides or {})

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceBook:
        """The price book with the override file at `path` (if any)."""
        if path is None:
            return cls()
        try:
            with Path(path).open("rb") as file:
                table = tomllib.load(file)
        except FileNotFoundError as exc:
            raise ConfigError(f"price file '{path}' does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"price file '{path}' is not valid TOML: {exc}") from exc
        models = table.get("models", {})
        try:
            return cls({name: ModelPrice.model_validate(rates) for name, rates in models.items()})
        except ValidationError as exc:
            raise ConfigError(f"price file '{path}': {exc}") from exc

    def cost(self, model: str | None, usage: Usage, *, provider: str | None = None) -> Cost:
        """What `usage` cost on `model` (`provider` helps the library pick the right list)."""
        if not model:
            return UNPRICED
        override = self.overrides.get(model)
        if override is not None:
            return override.cost(usage)
        return _library_cost(model, provider, _usage_key(usage))


# The memo is keyed by the client's model string: bounded in count, and by this in length
# (a longer name, which no real model has, is priced each time): 65,536 keys ~ 20 MB at most.
MAX_MEMO_MODEL = 128


def _usage_key(usage: Usage) -> tuple[int, int, int, int, int]:
    return (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
            usage.cache_write_1h_tokens, usage.output_tokens)


@short_key_cache(65536, MAX_MEMO_MODEL)
def _library_cost(model: str, provider: str | None, usage: tuple[int, int, int, int, int]) -> Cost:
    # Memoised: replays price the same usage again and again, and a lookup costs ~0.1 ms.
    from genai_prices import Usage as PricedUsage
    from genai_prices import calc_price

    input_tokens, cached, written, written_1h, output = usage
    priced = PricedUsage(input_tokens=input_tokens, cache_read_tokens=cached,
                         cache_write_tokens=written, cache_write_1h_tokens=written_1h,
                         output_tokens=output)
    for provider_id in dict.fromkeys((provider, None)):
        try:
            result = calc_price(priced, model, provider_id=provider_id)
        except LookupError:
            continue
        input_usd, output_usd = float(result.input_price), float(result.output_price)
        return Cost(input_usd, output_usd, input_usd + output_usd, priced=True)
    return UNPRICED
