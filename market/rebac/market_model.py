"""The market's authorization model (market_model.json), loaded and checked once per process."""

from functools import cache
from pathlib import Path

from market.rebac.schema import AuthorizationModel, load_model

MARKET_MODEL_PATH = Path(__file__).with_name("market_model.json")


@cache
def market_model() -> AuthorizationModel:
    """The compiled market model; a broken file fails here, before any tuple is read."""
    return load_model(MARKET_MODEL_PATH)
