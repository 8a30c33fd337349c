"""One or many patients through the engine: events, solver options, simulate, results."""
