"""Benchmark harness: this server against the libvips ceiling, thumbor, ipx and a bare endpoint.

Not part of the server and not a test: see ``benchmarks/run.py`` for the one command that runs it.
"""
