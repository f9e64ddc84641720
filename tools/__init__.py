"""The `turnstile` command line and the product's tools: `serve`, `token`, `replay`, `loadtest`.

The benchmarks and the hostile-conditions harnesses live apart, in `lab/` (not shipped).
"""
