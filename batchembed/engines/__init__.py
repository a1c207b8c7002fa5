"""Where the tasks run: `local` on this machine (the default) or `ray` on a Ray cluster. Both
hand the same planned tasks to stages/task.run_task; the driver around them (job.py) plans the
tasks, counts what they report and finishes the run, the same for both."""
