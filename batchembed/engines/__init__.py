"""How shards are scheduled: `local` in this process (the default) or `ray` on a Ray cluster;
the resumable job around them (job.py) is the same for both."""
