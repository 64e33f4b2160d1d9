"""persistd: a durable persistence service for backtest-kit trading bots."""

__version__ = "0.1.0"
