"""Reading sentence pairs in and writing distance rows out."""
