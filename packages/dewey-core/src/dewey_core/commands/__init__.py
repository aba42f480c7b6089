"""Subcommands of the ``dewey`` command line (see :mod:`dewey_core.cli`)."""
