"""Live updates: event streams, their tickets and the per-worker fan-out."""
