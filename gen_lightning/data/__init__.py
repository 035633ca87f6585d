"""Data modules by modality (images, text), their sources and resumable loaders."""
