"""Demo data for the areamesh demo mesh: synthetic municipal files in the layouts portals publish,
and the translation mappings that turn them into the standard models (docs/mappings.md)."""
