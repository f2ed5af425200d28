"""Embeddings (encoder, offline model build) and the FAISS duplicate index."""
