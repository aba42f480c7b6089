"""llamaindex-dewey: Dewey embeddings and late chunking for llamaindex."""
