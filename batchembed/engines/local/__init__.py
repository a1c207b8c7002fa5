"""The local engine: the planned tasks on this machine (runner.py), their prepare step in worker
processes (prepare_pool.py) and their write step in a writer process (writer_process.py)."""

from batchembed.engines.local.runner import LocalRunner, run

__all__ = ["LocalRunner", "run"]
