"""Thin Rasa custom actions: validate slots, call the intake API, phrase replies in Chinese."""

from bot.text.redact import install_log_redaction

# The action server logs slots and API errors; a resident's phone or name never reaches var/logs.
install_log_redaction(warm=True)
