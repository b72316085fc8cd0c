"""Intake service: POST /v1/events, validation, publish to Kafka"""
