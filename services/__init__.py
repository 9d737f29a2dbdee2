"""Qingfeng services: one package each, talking only over gRPC and Kafka."""
