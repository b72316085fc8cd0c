"""Shared plumbing of the four services: settings, database, Kafka router, batch consumption, idempotency,
dead letters, outbox, keys, errors, health/metrics endpoints, logging. Libraries only: nothing here runs by
itself.

Import from the modules (`from tthc_common.outbox import add_to_outbox`); each has one purpose:

    settings      ServiceSettings, service_settings_config, supported_database_url
    db            make_engine, session_scope, run_in_transaction, run_migrations, check_database, dialect_insert
    migrations    run_alembic_env (a service's env.py), create_processed_events_table, create_outbox_table, ...
    idempotency   ProcessedEvent, mark_processed, mark_processed_many
    batches       BatchRunner, Runners, make_runners, Received, is_infrastructure_error, record_json
    dead_letter   DeadLetters, Rejected, PermanentError, failure_reason, HEADER_*
    outbox        OutboxMessage, add_to_outbox, add_payload_to_outbox, OutboxRelay
    publish       encode_event, message_for, publish_messages, PublishError
    background    BackgroundLoop (a task running a step until stopped: relays, sweepers, refreshers)
    broker        make_kafka_router, batch_options, KafkaMessage, KafkaRouter, AckPolicy
    keys          Keys, KeyHolder, hash_key, bearer_key: one digest format for every service's keys
    errors        ApiError, Problem, ErrorBody, install_error_handlers, error_responses, Page, page_request
    health        health_router (/healthz, /readyz, /metrics)
    logging       configure_logging, event_log_fields
    service       build_service_app, run_service, service_main, StartupRefused
"""
