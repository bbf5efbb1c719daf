"""Talking to a registry over HTTPS ourselves: challenges and tokens, the credential check,
and Gitea's answers."""
