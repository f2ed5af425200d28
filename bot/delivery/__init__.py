"""Reliable delivery: an outbox table, a worker with retries/backoff/dead-letter, and backends."""
