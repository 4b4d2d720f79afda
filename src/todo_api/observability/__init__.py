"""Logs, metrics, and the redaction that keeps user data out of both."""
