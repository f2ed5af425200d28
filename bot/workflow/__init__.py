"""The case workflow domain: states and transitions, access, deadlines, merges, monthly figures.

`check_*` functions validate and ask access; `do_*` functions change rows and queue outbox messages in
the caller's transaction. The web layer (console, API) only parses requests and maps the errors in
bot.workflow.errors to HTTP statuses.
"""
