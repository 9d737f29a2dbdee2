"""Adapters of the collector to outside systems: ``sql.py`` (source registry, tip registry, audit log)."""
