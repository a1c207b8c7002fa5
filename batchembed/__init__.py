"""batchembed: per-word GloVe and BERT distances between sentence pairs, in batch."""

__version__ = "0.1.0"
