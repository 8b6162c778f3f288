"""The trusted checker: numpy and python-flint only (never torch, pickle or the prover)."""

__version__ = "0.1.0"  # the project version (pyproject.toml); tests keep the three equal
