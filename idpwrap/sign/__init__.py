"""Sigstore keys, signing what a push pushed, and verifying a signature in a registry."""
