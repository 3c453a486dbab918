"""The `avengers` command, one module per command group: `commands` (the parser; data, fit,
route, evaluate), `engines` (vote, calibrate), `serve` (serve). Entry point: :func:`main`."""

from avengers_core.cli.commands import main

__all__ = ["main"]
