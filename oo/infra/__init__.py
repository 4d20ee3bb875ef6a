"""Local infrastructure for development and tests: Kafka and PostgreSQL, no Docker."""
