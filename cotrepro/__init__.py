"""cotrepro: reproduce what language models learn from synthetic chain-of-thought traces."""

__version__ = "0.1.0"
