"""Prefect tasks: thin wrappers over the vaceflow core (caching, logs, artifacts).

No task retries: each call retries in one layer, in the core beside the call (a
download, a fetch, an upload, a DashScope read), and each task's docstring names it.

The tasks carry no tags: Prefect takes and releases a tag concurrency slot (two API
calls and a lease thread) around every run of a tagged task, whether or not a limit
exists, and the jobs' own limits are the global ones in `tasks.runtime`. Each task is
handed the `Services` it works with (`tasks.runtime.Runtime`): none reads a global.
"""
