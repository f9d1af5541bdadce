"""Subcommands of the ``conformance`` command (one module each, see ``conformance.cli``)."""
