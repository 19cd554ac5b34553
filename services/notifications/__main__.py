"""`python -m services.notifications`: the notifications service's entrypoint."""

from services.notifications.app import create_app
from services.notifications.settings import NotificationsSettings
from shared.http import serve

settings = NotificationsSettings()
serve("notifications", lambda: create_app(settings), settings, settings.notifications_port)
