"""Result cache tiers (memory, Redis, S3) behind one small async interface."""
