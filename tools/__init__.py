"""Developer tools: the engine benchmark (`python -m tools.bench`)."""
