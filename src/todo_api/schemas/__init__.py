"""Request and response models: what crosses the wire."""
