"""The steps of a task, one module each, in the order a shard goes through them:

    plan.py      the driver: tasks from metadata alone (listings, Parquet footers, done markers)
    task.py      one task end to end, the same in both engines: read pieces (io/reader.py),
                 then the steps below, streaming
    prepare.py   CPU: tokenize, subword-encode, targets, output rows -> batch-ready arrays
    embed.py     the device: only the model forward, gathers and distances
    assemble.py  CPU: arrays and distances -> the output table and its statuses
    write.py     CPU: the table -> the Parquet part, all or nothing
    (mark)       io/markers.py: the done marker, after the part, while the run owns the output

Each step is a plain function over picklable arrays, so an engine places it anywhere:
engines/local.py on this machine's processes and threads, engines/ray.py on Ray actors.
"""
