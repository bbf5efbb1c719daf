"""A build: the Containerfile read once, its bases, ignore files, timestamps and build cache,
buildah run, the result stored.
"""
