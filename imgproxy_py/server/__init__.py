"""The HTTP layer: the only place that composes sources, processing and workers."""
