"""Federation with other meshes (基盤間連携): documents, links, the registry-to-registry service."""
