"""A build: the Containerfile read once, stored bases, the build cache, buildah's log, the run."""
