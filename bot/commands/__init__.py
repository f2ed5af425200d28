"""Subcommands of the `shangliang` CLI, one module each (see bot/cli.py)."""
