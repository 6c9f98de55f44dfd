"""Errors the product raises on purpose: each message names what is wrong, for a one-line CLI report."""


class MlopsError(Exception):
    """A problem the user can act on: bad input, bad config, missing prerequisite."""


class Transient:
    """Marks an error worth a retry: a store or server was unreachable or answered with a server error."""


class ConfigError(MlopsError):
    """A config file is missing, malformed, or has unknown keys / wrong types."""


class InputDataError(MlopsError):
    """An input batch cannot be read or fails a table-level check."""


class StorageError(MlopsError):
    """A storage location does not exist, cannot be read or cannot be written."""


class TransientStorageError(StorageError, Transient):
    """A store could not be reached or answered with a server error: worth a retry."""


class RegistryError(MlopsError):
    """The model registry refused a request or has no such experiment, run, model, version or artifact."""


class RegistryUnavailable(RegistryError, Transient):
    """The model registry could not be reached or answered with a server error: worth a retry."""


class UntrustedModelError(RegistryError):
    """A model holds types outside the serialization allow-list: it is neither logged nor loaded."""


class RegistryBusy(RegistryError, Transient):
    """Another process held the registry lock of a model for longer than this one would wait."""


class AliasConflict(RegistryError):
    """An alias no longer points at the version a compare-and-swap move expected (someone moved it)."""
