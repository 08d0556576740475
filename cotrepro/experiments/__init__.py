"""Experiment drivers: the logic behind the notebooks, one module per family of claims."""
