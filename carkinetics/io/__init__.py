"""Files: atomic output folders, termination signals, provenance, result records, fast CSV, TOML."""
