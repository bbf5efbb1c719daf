"""Integration tests: real buildah, skopeo and docker-registry on 127.0.0.1."""
