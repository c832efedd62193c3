"""Integrations with training frameworks (optional extras): ``integrations.lightning``."""
