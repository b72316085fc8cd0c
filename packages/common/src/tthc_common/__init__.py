"""Shared plumbing: settings pieces, database, Kafka broker factory, idempotency, dead-letter middleware, health"""
