"""One plain function per command: in-memory objects in and out, no argv, no stdout."""
