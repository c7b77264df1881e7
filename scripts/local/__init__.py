"""The local platform the drill and tests start: PostgreSQL clusters, moto, the mock evaluator."""
