"""Metrics: the figures of CONTRACT §4-§5 from processing's status events."""
