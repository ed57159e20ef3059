"""The one kind of error the local stack reports: a sentence saying what is wrong and what to do."""


class StackError(RuntimeError):
    """A problem with the local stack that the user can act on; printed without a traceback."""
