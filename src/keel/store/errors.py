"""The one error hierarchy of keel.

Every message says what failed, the offending value, what was expected and what to do next.
Domain errors carry no HTTP status; the serving layer maps them at its boundary.

```
KeelError
├── ConfigError (ValueError)             settings or a file that keel reads are wrong
├── SourceError (ValueError)             a data source cannot be read (missing, unreadable, encoding)
├── ContractError (ValueError)           a contract file is malformed
├── SchemaError (ValueError)             data do not fit a contract (missing columns, wrong types)
├── ValidationFailedError (ValueError)   too many rows were refused by a contract
├── NotFoundError (KeyError)             a named thing does not exist
│   ├── DatasetNotFoundError
│   └── ModelNotFoundError
├── GateFailedError (ValueError)         a candidate failed a gate
├── UnsafeArtifactError (RuntimeError)   an artifact holds untrusted types or bad contents
├── ConflictError (RuntimeError)         a concurrent change won; retry
├── OverloadedError (RuntimeError)       no room for this work now; retry after `retry_after_s`
└── IntegrityError (RuntimeError)        stored content does not match its recorded hash
```
"""

from __future__ import annotations


class KeelError(Exception):
    """Base class of every error keel raises on purpose."""

    def __str__(self) -> str:
        # KeyError quotes its message; keep every keel error readable as one line.
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(KeelError, ValueError):
    """Raised when settings, or a configuration file keel reads, hold a wrong value."""


class SourceError(KeelError, ValueError):
    """Raised when a data source is missing, unreadable or in an unexpected encoding."""


class ContractError(KeelError, ValueError):
    """Raised when a contract file is malformed or names an unknown type, role or policy."""


class SchemaError(KeelError, ValueError):
    """Raised when data do not fit a contract as a whole (columns missing or unexpected)."""


class ValidationFailedError(KeelError, ValueError):
    """Raised when the share of refused rows is over the contract's threshold."""


class NotFoundError(KeelError, KeyError):
    """Raised when a named object (dataset, version, model, alias) does not exist."""


class DatasetNotFoundError(NotFoundError):
    """Raised when a dataset name or a dataset version id is unknown."""


class ConflictError(KeelError, RuntimeError):
    """Raised when a concurrent writer changed the same object first."""


class IntegrityError(KeelError, RuntimeError):
    """Raised when stored content does not match the sha256 recorded for it."""


class ModelNotFoundError(NotFoundError):
    """Raised when a model name, version or alias is unknown."""


class UnsafeArtifactError(KeelError, RuntimeError):
    """Raised when an artifact holds types keel does not trust, or contents that fail checks."""


class GateFailedError(KeelError, ValueError):
    """Raised when a candidate fails one of its gates and is not registered or promoted."""


class OverloadedError(KeelError, RuntimeError):
    """The server cannot take this work now and says when to retry (503 with `Retry-After`):
    a model's queue is full or waited too long, or the prediction log's buffers are full."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
