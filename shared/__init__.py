"""The project's shared core: event models, dossier rules, settings, logging and adapters' helpers."""
