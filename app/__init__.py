"""persistd: a durable persistence service for backtest-kit trading bots."""

from importlib.metadata import version

# Written once, in pyproject.toml; an installed (or editable) distribution carries it.
__version__ = version("persistd")
