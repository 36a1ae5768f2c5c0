"""pytest fixtures for a Redrive SQS server (see README.md)."""

from .server import RedriveServer, start_server

__all__ = ["RedriveServer", "start_server"]
