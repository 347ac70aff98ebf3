"""One plain function per command: in-memory values in and out; no argv, no printing, no exiting."""
