"""`python -m services.intake`: serve intake (POST /v1/events) on its port."""

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.http import serve

settings = IntakeSettings()
serve("intake", lambda: create_app(settings), settings, settings.intake_port)
