"""A username and its secret, and where they came from: the one value every source returns.

Kept apart from ``sources`` so that the later sources (auth files, idpbuilder) can make one
without importing the module that imports them.
"""

from __future__ import annotations


class Credentials:
    """A username and its password or token, and where they came from.

    ``identity_token`` marks an OAuth2 refresh token (an auth file's ``identitytoken``, or a
    credential helper's ``<token>`` username) rather than a password. The secret is left out
    of ``repr`` so that no debug output or traceback can show it.
    """

    __slots__ = ("identity_token", "secret", "source", "username")

    def __init__(
        self, username: str, secret: str, source: str, identity_token: bool = False
    ) -> None:
        self.username = username
        self.secret = secret
        self.source = source  # e.g. "environment (GITEA_USERNAME, GITEA_TOKEN)"
        self.identity_token = identity_token

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (
            (self.username, self.secret, self.source, self.identity_token)
            == (other.username, other.secret, other.source, other.identity_token)
        )

    def __hash__(self) -> int:
        return hash((self.username, self.source))
