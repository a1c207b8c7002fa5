"""The steps of a task, one module each, in the order a shard goes through them:

    plan.py       the driver: tasks from metadata alone (listings, Parquet footers, done markers)
    task.py       run_task, one task end to end, the one function both engines call: read pieces
                  (io/reader.py), then the steps below, streaming, each placed by the engine
    prepare.py    CPU: tokenize, subword-encode, targets, output rows -> batch-ready arrays
    embed.py      the device: only the model forward, gathers and distances
    assemble.py   CPU: arrays and distances -> the output table and its statuses
    write.py      CPU: the tables -> the Parquet part, all or nothing
    (mark)        io/markers.py, called by task.py: the done marker, after the part, while the
                  run owns the output

Each step is a plain function over picklable arrays, so an engine places it anywhere:
engines/local/ on this machine's processes and threads, engines/ray.py on Ray actors.
in_memory.py runs prepare -> embed -> assemble on rows already in memory (compare, evaluate).
"""
