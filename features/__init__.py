"""Dask feature stage: log-mel front ends, embeddings, importers, class index, statistics."""
