"""keel: take a trained model from prototype to production and keep it healthy there."""

__version__ = "0.1.0"

__all__ = ["__version__"]
