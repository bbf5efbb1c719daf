"""One module per command; each takes plain values and raises ``IdpwrapError`` on failure."""
