"""What a run leaves for its users: the output read back whole (read.py), the run's account
(summary.py), and the HTML report (report.py)."""
