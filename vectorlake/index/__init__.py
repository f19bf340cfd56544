"""The vector index: mappings, generations behind aliases, the bulk sink (external versions), k-NN search."""
