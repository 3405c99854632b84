"""The key that seals secret config values when the embedded server is used and
``TENANTRY_SECRET_KEYS`` is not set: a file beside the server's data directory, made once.

A development convenience, as the embedded server is: the key sits on the same disk as the
data. A deployment sets ``TENANTRY_SECRET_KEYS`` (see :mod:`tenantry.core.secrets`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tenantry.core.secrets import Keyring, new_key
from tenantry.errors import ConfigurationError

__all__ = ["embedded_keyring", "key_file"]


def key_file(data_dir: Path) -> Path:
    """Where the key of the embedded server in ``data_dir`` is kept."""
    return data_dir.with_name(data_dir.name + ".secret-keys")


def embedded_keyring(data_dir: Path) -> Keyring:
    """The keyring in the key file of ``data_dir``'s server, made (mode 0600) when missing."""
    path = key_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(new_key("local") + "\n")
    try:
        return Keyring.parse(path.read_text().strip())
    except OSError as err:
        raise ConfigurationError(f"cannot read the secret key file {path}: {err}") from err
