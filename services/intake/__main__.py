import uvicorn

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.logging import configure_logging

settings = IntakeSettings()
configure_logging("intake", settings.log_level, settings.log_format)
uvicorn.run(
    create_app(settings),
    host=settings.bind_host,
    port=settings.intake_port,
    log_config=None,
    access_log=False,
)
