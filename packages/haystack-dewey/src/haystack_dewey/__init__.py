"""haystack-dewey: Dewey embeddings and late chunking for haystack."""
