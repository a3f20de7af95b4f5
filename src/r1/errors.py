"""User-facing errors.

An :class:`R1Error` is bad input from the user (a config key, a path, a data line). The CLI prints it as one line
and exits with code 2; ``--debug`` shows the traceback. Anything else is a bug and keeps its traceback.
"""


class R1Error(Exception):
    """Bad input: the message says what is wrong and where, in one line."""
