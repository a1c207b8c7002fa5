"""How shards are scheduled: `local` in this process (the default)."""
