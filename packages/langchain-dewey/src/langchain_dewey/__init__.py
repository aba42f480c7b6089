"""langchain-dewey: Dewey embeddings and late chunking for langchain."""
