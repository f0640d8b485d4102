"""rtrec: record OpenAI Realtime API sessions and replay them."""

from rtrec._version import __version__

__all__ = ["__version__"]
