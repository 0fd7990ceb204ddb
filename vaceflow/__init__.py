"""vaceflow: run wan2.1-vace-plus (DashScope) reliably from media pipelines."""

__version__ = "0.1.0"
