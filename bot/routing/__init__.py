"""Routing: member directory, rules (topic x area x sector -> committee + members) and dispatch."""
