"""Errors that carry their meaning: the CLI and the API map them to messages and status codes."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what
    a log line or a one-line error says of a driver's multi-line error."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


class GridwatchError(Exception):
    """An error a person can act on; its message is shown as is, without a traceback."""


class ConfigError(GridwatchError):
    """A setting is missing or malformed."""


class ServiceUnavailable(GridwatchError):
    """The database or the broker cannot be reached."""


class InputFileError(GridwatchError):
    """An import file cannot be read or has bad rows; the message names the file and row."""


class NotFound(GridwatchError):
    """The object asked for does not exist (or is not visible to the caller)."""


class Conflict(GridwatchError):
    """The request conflicts with the current state."""


class Forbidden(GridwatchError):
    """The caller may not do this."""


def listed(problems: list[str], most: int = 20) -> str:
    """The first `most` problems on one line, and "..." when there are more."""
    return "; ".join(problems[:most]) + ("; ..." if len(problems) > most else "")
