"""Parsing imgproxy URLs into ProcessingOptions (pure; no I/O)."""
