"""Embedders: load a model once, then return vectors for requested tokens as one tensor."""
