"""Thin Rasa custom actions: validate slots, call the intake API, phrase replies in Chinese."""
