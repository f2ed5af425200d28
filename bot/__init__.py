"""商量 Shangliang: intake assistant for residents' concerns (社情民意)."""

__version__ = "0.1.0"
