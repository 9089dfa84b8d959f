"""The learned auto-quality model (``aq:ml``): features, dataset, training, registry, serving.

Pure Python (no libvips: the features are computed by processing/aqfeatures.py); scikit-learn
is needed only by ``imgproxy-py models train`` (the ``train`` extra), never by the server.
"""
