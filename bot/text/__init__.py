"""Text understanding shared by every part (ground floor: imports nothing else from `bot`).

One module per kind of thing read from residents' words, used by the actions, the intake service, the
duplicate re-check and redaction alike: `normalize` (full-width folding), `answers` (yes/no, read-back,
consent, anonymity, skip words), `places` (places kept whole, their parts, comparing two places),
`times`, `scope`, `vague`, `casenumbers`, `pii` (personal data, phones), `redact`, and `analyze` (the
whole reading of an opener).
"""
