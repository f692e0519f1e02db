"""Recorded bags: reading, indexing, message codec and building, datasets, writing."""
