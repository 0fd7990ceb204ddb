"""Media: find ffmpeg, probe files, and prepare inputs so the service takes them.

    sources    a path, http(s) URL or s3:// URI -> a local file (capped, timed)
    probe      what a file is (PyAV); facts adds what planning also needs
    plan       pure: the least work that meets a role's rule, with reasons
    execute    a plan -> one ffmpeg run (or a file copy)
    conform    probe, plan, execute, check, cache; returns a ConformReport
    spec       a job as the user states it, and the job models' fields for the CLI
    prepare    a whole job: video first, masks against it, clips as a pair, images

The limits themselves live in `vaceflow.limits`; nothing here restates a number.
"""
