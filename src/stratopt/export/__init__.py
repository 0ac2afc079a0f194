"""Exporters: Pine Script v6 and performance reports."""
