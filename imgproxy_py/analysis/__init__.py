"""Image analysis behind small seams: detectors (faces), their registry, and pure geometry on what they find.

Nothing here imports pyvips: a detector receives raw RGB bytes that processing/vips.py
produced, and returns boxes as fractions of that picture, so the same result applies to
the source at any size.
"""
