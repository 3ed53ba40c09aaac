"""The registry's dataset catalog: Japanese full-text search over dataset metadata."""
