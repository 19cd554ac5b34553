import uvicorn

from services.processing.app import create_app
from services.processing.settings import ProcessingSettings
from shared.logging import configure_logging

settings = ProcessingSettings()
configure_logging("processing", settings.log_level, settings.log_format)
uvicorn.run(
    create_app(settings),
    host=settings.bind_host,
    port=settings.processing_port,
    log_config=None,
    access_log=False,
)
