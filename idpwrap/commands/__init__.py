"""One module per command, each with ``add_arguments(parser)`` and ``execute(args) -> int``;
what several of them share (the store, notices, TLS and auth-file arguments) is ``shared``."""
