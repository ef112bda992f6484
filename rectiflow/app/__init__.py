"""The Engine, assembled from one module per concern (see app/engine.py)."""

from rectiflow.app.engine import Engine

__all__ = ["Engine"]
