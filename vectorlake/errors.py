"""Errors a user can act on. The CLI prints their message as one line, without a stack trace."""


class VectorlakeError(Exception):
    """An error whose message says what is wrong and what to do about it."""


class ConfigError(VectorlakeError):
    """A configuration file or override is missing, unknown or of the wrong type."""


class StackError(VectorlakeError):
    """A local server could not be started, stopped or reached."""


class IndexUnavailable(VectorlakeError):
    """Index writes keep failing (429, 5xx, connection errors) after the retries, or cannot be sent at all."""


class IndexStateError(VectorlakeError):
    """An index alias or generation is not in the expected shape (e.g. a plain index named like the alias)."""


def one_line(error: BaseException, named: bool = True, limit: int | None = None) -> str:
    """The first line of an error's message, after its type name when ``named``; the type name alone when
    the message is empty; cut to ``limit`` characters when given."""
    lines, name = str(error).strip().splitlines(), type(error).__name__
    if not lines:
        text = name
    elif named:
        text = f"{name}: {lines[0]}"
    else:
        text = lines[0]
    return text if limit is None else text[:limit]
