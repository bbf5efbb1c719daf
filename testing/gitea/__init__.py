"""A registry answering as idpbuilder's Gitea 1.24.3 behind ingress-nginx, from its source."""
