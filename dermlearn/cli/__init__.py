"""The ``dermlearn`` command: :func:`main` parses the arguments (:mod:`.app`) and runs one
command module (``train``, ``lr-find``, ``predict``, ...), which imports torch only then."""

from .app import main

__all__ = ["main"]
