"""Bulk Data export jobs: their rows and the few queries that keep them (docs/bulk-export.md)."""
