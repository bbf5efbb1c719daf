"""idpwrap's test support: throwaway registries (docker-registry, a Gitea model), the CLI runner,
process and /proc helpers, images in a store. Imported by tests/ and scripts/; not in the wheel."""
