"""Console accounts of the connector: the municipality's operators who sign in at /admin/."""
