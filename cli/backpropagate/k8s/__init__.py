"""Kubernetes: manifests that run a planned training run on a cluster's own training operator."""
