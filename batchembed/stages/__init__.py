"""The stages of one shard, each a plain function over picklable arrays, so an engine can
place them anywhere: prepare (CPU: tokenize, encode, targets, row planning) -> embed (the
device: forward, gather, distances) -> assemble (the output table and its statuses).

engines/local.py runs prepare in worker processes and embed in a thread of its own; a
Ray engine can run prepare on CPU actors and embed on GPU actors (PreparedShard.to_dict /
from_dict give the dict of numpy arrays Ray Data batches are made of).
"""
