"""errors.py: exit codes are part of the interface (docs/exit-codes.md): they must not move."""

from __future__ import annotations

import pytest

from idpwrap import errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.IdpwrapError, 1),
        (errors.UsageError, 2),
        (errors.InvalidReference, 2),
        (errors.ContextError, 2),
        (errors.CredentialsError, 2),
        (errors.ImageNotFound, 3),
        (errors.AuthFailed, 4),
        (errors.RegistryUnreachable, 5),
        (errors.TlsNotTrusted, 6),
        (errors.ToolMissing, 7),
        (errors.StoreError, 8),
        (errors.BuildFailed, 1),
        (errors.PushFailed, 1),
    ],
)
def test_exit_codes(error, code):
    assert error.exit_code == code
    assert issubclass(error, errors.IdpwrapError)


def test_interrupted():
    assert errors.Interrupted().exit_code == 130
    assert str(errors.Interrupted()) == "interrupted by SIGINT"
    assert errors.Interrupted("SIGTERM", errors.EXIT_TERMINATED).exit_code == 143


def test_messages_give_the_next_step():
    assert "apt-get install skopeo" in str(errors.ToolMissing.named("skopeo"))
    assert "idpwrap build" in str(errors.ImageNotFound.in_store("a:b", "/s", []))
    assert "did you mean a:c, a:d?" in str(
        errors.ImageNotFound.in_store("a:b", "/s", ["a:c", "a:d"])
    )
    failed = errors.BuildFailed.with_output(1, ["STEP 1/2", "  ", "Error: boom\n"])
    assert str(failed) == "buildah bud failed (exit code 1): STEP 1/2 | Error: boom"
