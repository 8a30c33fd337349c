"""Figures (matplotlib imported inside the functions); one module per family."""
