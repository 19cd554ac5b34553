"""Intake: receives the one-stop-shop system's CloudEvents over HTTP, validates them, publishes them to Kafka."""
