"""Command-line interface: one module per command, joined in :mod:`tomocam.cli.main`."""
