"""What ``idpwrap doctor`` checks: the tools, the store, limits, the registry, the credentials."""
