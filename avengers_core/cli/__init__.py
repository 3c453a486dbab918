"""The `avengers` command: one module per command group (`main`: data, fit, route,
evaluate; `engines`: vote, calibrate; `serve`: serve). Entry point: :func:`main`."""

from avengers_core.cli.main import main

__all__ = ["main"]
