"""Prefect flows that compose the tasks: one per VACE function, a job flow and a batch flow."""
