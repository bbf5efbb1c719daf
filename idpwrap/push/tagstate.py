"""What the destination tag serves, asked of the registry before the copy (is the registry
already up to date? then skopeo need not start) and after it (did another push move the tag
meanwhile?). The design notes in docs/push.md ("Already up to date", "Racing pushes").

Neither question can make a push fail or lie: a lookup that fails, times out or is refused
before the copy means "copy"; after the copy it means "trust the digest skopeo wrote", said
with -v. Gitea keeps tags lowercased, so a tag with capitals is asked for as Gitea keeps it.
"""

from __future__ import annotations

from idpwrap import log
from idpwrap.registry import manifests

TYPE_CHECKING = False
if TYPE_CHECKING:
    from idpwrap.creds.credentials import Credentials
    from idpwrap.push.request import PushRequest
    from idpwrap.refs import Destination


class TagState:
    """One push's questions about its destination tag, with one registry client and token."""

    def __init__(
        self,
        request: PushRequest,
        destination: Destination,
        credentials: Credentials | None,
        lowercased: bool,
    ) -> None:
        self.request = request
        # The tag as the registry keeps it: Gitea lowercases (registry/gitea.py says when).
        self.tag = destination.tag.lower() if lowercased else destination.tag
        self.reference = f"{destination.registry.host}/{destination.repository}:{self.tag}"
        self.reader = manifests.TagReader(
            destination.registry, destination.repository, credentials, request.tls,
            request.lookup_timeout,
        )  # fmt: skip

    def up_to_date(self, digest: str) -> bool:
        """Whether the tag already serves ``digest``: anything but a yes means copy."""
        found = self.reader.digest(self.tag)
        if found.state == manifests.FOUND:
            if found.digest == digest:
                return True
            log.info("%s serves %s, not %s: copying", self.reference, found.digest, digest)
        elif found.state == manifests.MISSING:
            log.info("%s does not exist yet: copying", self.reference)
        else:
            log.info("could not ask what %s serves (%s): copying", self.reference, found.reason)
        return False

    def served_after_copy(self, pushed: str) -> str:
        """The digest the tag serves after the copy: another one when a concurrent push moved
        it; ``pushed`` itself when it still serves it or when the registry cannot tell; "" when
        the registry says it has no such tag."""
        found = self.reader.digest(self.tag)
        self.reader.close()  # the last question of this push
        if found.state == manifests.FOUND:
            return found.digest
        if found.state == manifests.MISSING:
            log.info("%s is not there after the push", self.reference)
            return ""
        why = found.reason
        log.info(
            "could not read %s back after the push (%s): trusting the digest skopeo wrote, %s",
            self.reference, why, pushed,
        )  # fmt: skip
        return pushed
