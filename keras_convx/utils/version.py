"""The package version, in one place below everything that reports it (the root's
`__version__`, the exported file's metadata)."""

VERSION = "0.1.0"
