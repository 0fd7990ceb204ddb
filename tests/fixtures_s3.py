"""Fixtures that start SeaweedFS on loopback (filled in with the S3 staging)."""
