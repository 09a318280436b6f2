"""Concord: collaborative treatment planning for mental health and addiction care."""

__version__ = "0.1.0"
