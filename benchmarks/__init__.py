"""Benchmarks: each module with a ``main(argv) -> int`` is run by ``make bench``."""
