"""Studies built from cohorts: sweeps (local or Dask), sensitivity, validation, runs."""
