"""gancli: train, sample, evaluate and inspect the GANs of Goodfellow et al. (2014)."""

__version__ = "0.1.0"
