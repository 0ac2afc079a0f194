"""stratopt: trading-strategy research and execution over gRPC."""

__version__ = "0.1.0"
