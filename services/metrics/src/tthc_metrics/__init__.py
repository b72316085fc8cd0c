"""Metrics service: index figures for Prometheus, Grafana and reports"""
