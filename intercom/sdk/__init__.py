"""The client SDK: a Python port of the MessageBird Client SDK."""

from .client import Client
from .errors import ClientError, ForbiddenError, InternalError, NotAcceptableError
from .status import ClientStatus

__all__ = ["Client", "ClientError", "ClientStatus", "ForbiddenError", "InternalError", "NotAcceptableError"]
