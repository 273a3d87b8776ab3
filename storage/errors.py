"""storage's error boundary: callers see these, never SQLAlchemy's exceptions."""


class StorageError(RuntimeError):
    """The database could not do what was asked (unreachable, constraint, bad state)."""


class DuplicateError(StorageError):
    """A row with the same unique key exists already; the first row is kept."""


class NotFoundError(StorageError):
    """The row asked for does not exist."""


class SchemaOutOfDateError(StorageError):
    """The database schema is not at the revision this code expects."""
