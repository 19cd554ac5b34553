"""Notifications: SMS to citizens when their dossier changes."""
