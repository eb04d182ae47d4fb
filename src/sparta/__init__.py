"""sparta: sparse and trustworthy neural networks, measured on the same model."""

from sparta.io import load, save

__version__ = "0.1.0"
__all__ = ["load", "save", "__version__"]
