"""The package's version, apart from the package root: ``compat`` records it in artifacts without importing the root."""

__version__ = "0.2.0"  # keep equal to pyproject.toml's version
