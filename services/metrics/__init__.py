"""Metrics: the figures of docs/contract.md §4-§5 from processing's status events."""
