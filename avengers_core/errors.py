"""Errors the user can fix: the message says which file, which row and what was expected."""


class InputError(ValueError):
    """Bad user input (a table, a profile, a question set, an option)."""
