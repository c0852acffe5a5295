"""mlops-actions: the Python package behind every action of this repository."""

__version__ = "0.1.0"
