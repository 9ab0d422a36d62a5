"""Guest side of the sandbox: code that runs inside the confined child (stdlib + numpy + codec)."""
