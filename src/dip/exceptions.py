"""Every exception the DIP raises on purpose derives from :class:`DipError`.

    DipError
    ├── ConfigurationError      bad settings or command-line arguments
    ├── SignatureError          a request's signature headers do not verify
    ├── CatalogueError          a channel definition is not acceptable
    ├── ReferenceImportError    the official OpenAPI source cannot be read (dip.tools.openapi_import)
    ├── StoreError              the database failed
    │   ├── UniqueViolation     a unique key (sender unique reference, ...) already exists
    │   └── ConstraintViolation another constraint refused a write (a reference to no row, ...)
    └── UnstorableValue         the database refused a value of the request (e.g. text with NUL)

Driver exceptions (sqlite3, asyncpg) are translated into these at the store boundary so
nothing above the store imports a driver.
"""


class DipError(Exception):
    """Root of the DIP's own exceptions."""


class ConfigurationError(DipError):
    """Settings or arguments that cannot work."""


class SignatureError(DipError):
    """A request's X-DIP-* signature headers are missing or do not verify."""


class CatalogueError(DipError):
    """A channel definition is malformed or inconsistent."""


class StoreError(DipError):
    """The database failed in a way the caller cannot fix."""


class UniqueViolation(StoreError):
    """A row with the same unique key already exists."""


class ConstraintViolation(StoreError):
    """A write broke a constraint other than a unique key (foreign key, NOT NULL, CHECK): a
    store caller's mistake, never the request's."""


class UnstorableValue(DipError):
    """The database refused a value the request carried (PostgreSQL: a data exception, such as
    text holding a NUL character). The request's fault, not the database's: answered 400."""
