"""Virtual cohorts: the per-patient chunk loop, streaming quantile bands, results on disk."""
