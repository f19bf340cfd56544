"""Errors a user can act on. The CLI prints their message as one line, without a stack trace."""


class VectorlakeError(Exception):
    """An error whose message says what is wrong and what to do about it."""


class ConfigError(VectorlakeError):
    """A configuration file or override is missing, unknown or of the wrong type."""


class StackError(VectorlakeError):
    """A local server could not be started, stopped or reached."""
