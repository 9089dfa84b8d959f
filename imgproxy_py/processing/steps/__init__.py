"""Pipeline steps, one per file, named as in imgproxy's pipeline."""
