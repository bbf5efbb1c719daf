"""CNCF distribution (docker-registry) on 127.0.0.1: TLS and htpasswd, or our token server."""
