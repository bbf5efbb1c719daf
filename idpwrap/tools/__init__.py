"""The outside programs: the one process runner, and the only place an argv for buildah,
skopeo or cosign is built."""
