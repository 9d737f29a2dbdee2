"""Adapters of the grader: one module per outside system (policy files, Kafka, Elasticsearch)."""
