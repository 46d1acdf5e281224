"""Checks of the product without a cluster (make offline): manifests, Dockerfile, Tiltfile."""
