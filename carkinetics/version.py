"""The version of carkinetics (one place: the package, provenance records and packaging read it here)."""

__version__ = "0.1.0"
