"""Scenario files: the schema of legal sections, loading, the virtual population, endpoints, sweep grids, targets."""
