"""mylab: an example of models and datasets kept outside lineup and found by it as a plugin."""

__version__ = "0.1.0"
