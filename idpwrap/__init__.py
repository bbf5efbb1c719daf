"""idpwrap: build images with rootless buildah into a local OCI store, push them with skopeo."""

__version__ = "0.1.0"
