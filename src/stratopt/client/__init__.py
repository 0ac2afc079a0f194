"""The `stratopt` CLI and the Python client helpers on the generated stubs."""
