"""Shared plumbing of the four services: settings, database, Kafka router, idempotency, dead-letter
middleware, outbox, health/metrics endpoints, logging. Libraries only: nothing here runs by itself.

Import from the modules (`from tthc_common.outbox import add_to_outbox`); each has one purpose:

    settings      ServiceSettings, service_settings_config
    db            make_engine, session_scope, run_in_transaction, run_migrations, check_database
    migrations    run_alembic_env (a service's env.py), create_processed_events_table, create_outbox_table,
                  add_outbox_headers_column
    idempotency   ProcessedEvent, mark_processed, was_processed
    dead_letter   PermanentError, DeadLetterMiddleware, failure_reason, HEADER_*
    outbox        OutboxMessage, add_to_outbox, add_payload_to_outbox, OutboxRelay
    publish       encode_event, message_for, publish_messages, PublishError
    background    BackgroundLoop (a task running a step until stopped: relays, sweepers, refreshers)
    broker        make_kafka_router, consumer_options, KafkaMessage, KafkaRouter, AckPolicy
    health        health_router (/healthz, /readyz, /metrics)
    logging       configure_logging, event_log_fields
    service       build_service_app, run_service
    cli           service_main (`python -m SERVICE [hash-key KEY]`)
"""
