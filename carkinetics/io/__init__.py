"""Files: atomic output folders, provenance, fast CSV, TOML."""
