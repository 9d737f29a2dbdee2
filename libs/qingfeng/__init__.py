"""Qingfeng's shared kernel: what every process needs and nothing a single service owns."""

__version__ = "0.1.0"
