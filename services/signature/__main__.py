"""`python -m services.signature`: serve the signature service (its consumer and HTTP API) on its port."""

from services.signature.app import create_app
from services.signature.settings import SignatureSettings
from shared.http import serve

settings = SignatureSettings()
serve("signature", lambda: create_app(settings), settings, settings.signature_port)
