"""The staff and member console at /console/: server-rendered pages in the intake service."""
