"""Text understanding shared by every part (ground floor: imports nothing else from `bot`).

One module per kind of thing read from residents' words: `normalize` (full-width folding), `redact`
(personal data), and the readers the dialogue, the intake service and the duplicate re-check share.
"""
