"""`python -m services.processing`: serve processing (its consumer and HTTP API) on its port."""

from services.processing.app import create_app
from services.processing.settings import ProcessingSettings
from shared.http import serve

settings = ProcessingSettings()
serve("processing", lambda: create_app(settings), settings, settings.processing_port)
