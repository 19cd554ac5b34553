"""The five services. Each starts with `python -m services.<name>`."""
