"""pyro-dvae: disentangled dynamic representations from unordered data (Helminger et al. 2018)."""

__version__ = "0.1.0"
