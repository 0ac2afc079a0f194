"""Built-in strategies, one per module; each module defines `STRATEGY`.

The registry discovers every module here, so adding a strategy means adding a file.
"""
