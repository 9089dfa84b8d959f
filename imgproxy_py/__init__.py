"""imgproxy-py: an imgproxy-compatible image server on starlette and libvips."""

__version__ = "0.1.0"
