"""The ``jobwarden`` command-line tool (entry point: :func:`jobwarden.cli.main.main`)."""

from __future__ import annotations
