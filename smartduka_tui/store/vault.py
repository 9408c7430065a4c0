"""Encryption keys and the AES-256-GCM sealing of secrets (`smartduka_tui.secretbox`).

A ciphertext is `version byte | 12-byte random nonce | ciphertext+tag`, stored with the id of
the key (kid) that sealed it. The associated data binds shop id, field name and kid, so a
ciphertext copied to another shop, another field or relabelled with another kid fails to open.

Keys come from a keyring file (mode 0600; `kid=<64 hex>` lines and `active=<kid>`) or, for a
single key, from `SMARTDUKA_ENCRYPTION_KEY` (the seed's `MPESA_ENCRYPTION_KEY` is accepted too).
When the keyring file exists it is used; the variable may then only repeat one of its keys.
Threat model (DESIGN.md section 6): this protects copies of the database, not a till whose key
file an attacker can read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from smartduka_tui.secretbox import (
    KEY_BYTES,
    SEAL_VERSION,
    SealBrokenError,
    SecretBox,
    UnknownKidError,
)
from smartduka_tui.store.errors import (
    KeyMalformedError,
    KeyMissingError,
    KeyringPermissionError,
    TamperedSecretError,
    WrongKeyError,
)
from smartduka_tui.store.records import KID_PATTERN
from smartduka_tui.store.secret import Secret

ENV_KEY_NAMES = ("SMARTDUKA_ENCRYPTION_KEY", "MPESA_ENCRYPTION_KEY")
# The kid a key from the environment goes by (and keeps, once rotation writes a keyring).
ENV_KID = "env"
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
_FIX_MISSING = (
    "Create a keyring with `smartduka keys init`, or set SMARTDUKA_ENCRYPTION_KEY to 64 "
    "hexadecimal characters (`smartduka keys generate` prints a new key)."
)


def generate_key_hex() -> str:
    """A new random 256-bit key as 64 hex characters."""
    return secrets.token_hex(KEY_BYTES)


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys this till can use, by kid, and which one seals new secrets."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_kid: str
    source: str
    path: Path | None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def next_kid(self) -> str:
        numbers = [int(kid[1:]) for kid in self.keys if re.fullmatch(r"k\d{1,6}", kid)]
        return f"k{max(numbers, default=0) + 1}"


def _parse_key_hex(text: str, where: str) -> bytes:
    if not _HEX_KEY.fullmatch(text):
        # Never echo the value: it is (meant to be) a key.
        raise KeyMalformedError(
            f"{where} must be 64 hexadecimal characters (a 256-bit key), but it is "
            f"{len(text)} characters{'' if text.isalnum() else ' with other characters'}. "
            "`smartduka keys generate` prints a valid key."
        )
    return bytes.fromhex(text)


def _env_key(environ: Mapping[str, str]) -> tuple[str, bytes] | None:
    found = [(name, environ[name].strip()) for name in ENV_KEY_NAMES if environ.get(name)]
    if not found:
        return None
    keys = {name: _parse_key_hex(value, name) for name, value in found}
    if len(set(keys.values())) > 1:
        raise KeyMalformedError(
            f"{' and '.join(keys)} are both set to different keys; keep only one of them."
        )
    name = found[0][0]
    return name, keys[name]


def parse_keyring(text: str, source: str) -> tuple[dict[str, bytes], str]:
    """The keys and active kid in a keyring file's text; errors name the line, never a key."""
    keys: dict[str, bytes] = {}
    active: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        where = f"{source} line {number}"
        if not sep:
            raise KeyMalformedError(f"{where} is not `kid=<64 hex>` or `active=<kid>`.")
        if name == "active":
            if active is not None:
                raise KeyMalformedError(f"{where} names the active kid a second time.")
            active = value
            continue
        if not KID_PATTERN.fullmatch(name):
            raise KeyMalformedError(f"{where}: a kid must be 1 to 16 letters, digits, '-' or '_'.")
        if name in keys:
            raise KeyMalformedError(f"{where}: kid {name!r} appears twice.")
        keys[name] = _parse_key_hex(value, f"{where} (kid {name!r})")
    if not keys:
        raise KeyMalformedError(f"{source} holds no keys. {_FIX_MISSING}")
    if active is None:
        if len(keys) > 1:
            raise KeyMalformedError(f"{source} has several keys but no `active=<kid>` line.")
        active = next(iter(keys))
    if active not in keys:
        raise KeyMalformedError(f"{source}: the active kid {active!r} has no key in the file.")
    return keys, active


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringPermissionError(
            f"the keyring {path} has mode {mode:04o}, so other users could read or change it. "
            f"Run `chmod 600 {path}`, then try again."
        )


def load_keyring(path: Path, environ: Mapping[str, str] | None = None) -> Keyring:
    """The keyring file at `path` if it exists, else the key in the environment.

    Raises KeyMissingError when there is neither, KeyMalformedError for a bad key or file,
    KeyringPermissionError when the file is not private.
    """
    env = os.environ if environ is None else environ
    from_env = _env_key(env)
    if path.exists():
        _check_private(path)
        source = f"keyring {path}"
        try:
            text = path.read_text(encoding="ascii")
        except UnicodeDecodeError:
            raise KeyMalformedError(f"{source} is not a text file of `kid=<hex>` lines.") from None
        keys, active = parse_keyring(text, source)
        if from_env is not None and from_env[1] not in keys.values():
            raise KeyMalformedError(
                f"both {source} and {from_env[0]} are set, and that variable's key is not in "
                "the keyring. The keyring is what this till uses: unset the variable, or add "
                "its key to the keyring."
            )
        return Keyring(keys=keys, active_kid=active, source=source, path=path)
    if from_env is not None:
        name, key = from_env
        return Keyring(
            keys={ENV_KID: key},
            active_kid=ENV_KID,
            source=f"environment variable {name}",
            path=None,
        )
    raise KeyMissingError(
        f"no encryption key: there is no keyring at {path} and no key in "
        f"SMARTDUKA_ENCRYPTION_KEY. {_FIX_MISSING}"
    )


def write_keyring(path: Path, keys: Mapping[str, bytes], active_kid: str) -> Keyring:
    """Write a keyring atomically (private temp file, fsync, rename, fsync the folder): a
    crash leaves either the old file or the new one, never half of one."""
    if active_kid not in keys:
        raise ValueError("the active kid must be one of the keys")
    lines = [
        "# SmartDuka keyring: keep it private (chmod 600) and back it up apart from the database.",
        *(f"{kid}={key.hex()}" for kid, key in keys.items()),
        f"active={active_kid}",
    ]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("\n".join(lines) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return Keyring(keys=dict(keys), active_kid=active_kid, source=f"keyring {path}", path=path)


def create_keyring(path: Path) -> Keyring:
    """A new keyring file with one fresh active key; refuses to overwrite an existing one."""
    if path.exists():
        raise KeyMalformedError(f"a keyring already exists at {path}; it was left as it is.")
    return write_keyring(path, {"k1": bytes.fromhex(generate_key_hex())}, "k1")


def add_new_key(keyring: Keyring, path: Path) -> Keyring:
    """Write `path` with every key of `keyring` plus a new one, which becomes active."""
    kid = keyring.next_kid()
    keys = {**keyring.keys, kid: bytes.fromhex(generate_key_hex())}
    return write_keyring(path, keys, kid)


def _aad(shop_id: str, field_name: str, kid: str) -> bytes:
    return json.dumps(["smartduka-vault", SEAL_VERSION, shop_id, field_name, kid]).encode()


class Vault:
    """Seals and opens a till's secrets with a keyring's keys (one `SecretBox`), naming the
    shop and field in every error."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._box = SecretBox(keyring.keys, keyring.active_kid)

    @contextmanager
    def _known(self, kid: str) -> Iterator[None]:
        """The box's unknown kid in words that say which keyring lacks it."""
        try:
            yield
        except UnknownKidError:
            raise KeyMissingError(
                f"stored data is sealed with key {kid!r}, which {self.keyring.source} does "
                f"not have. Restore the keyring that holds {kid!r} (from your backup of it)."
            ) from None

    def seal(self, shop_id: str, field_name: str, secret: Secret) -> tuple[str, bytes]:
        """(kid, blob) for `secret` under the active key."""
        kid = self.keyring.active_kid
        plain = secret.reveal().encode("utf-8")
        return kid, self._box.encrypt(plain, _aad(shop_id, field_name, kid), kid=kid)

    def open(self, shop_id: str, field_name: str, kid: str, blob: bytes) -> Secret:
        """The secret in `blob`; TamperedSecretError when it fails authentication (the kid's key
        having been checked against the database, that means the data was altered)."""
        with self._known(kid):
            try:
                plain = self._box.decrypt(blob, _aad(shop_id, field_name, kid), kid=kid)
            except SealBrokenError:
                raise _tampered(shop_id, field_name) from None
        return Secret(plain.decode("utf-8"))

    def derive(self, kid: str, purpose: str) -> bytes:
        """A 256-bit key for one purpose (the audit chain, the PIN pepper, routing seals),
        derived from `kid`'s key with HKDF-SHA256: one key never serves two purposes."""
        info = json.dumps(["smartduka-derived", SEAL_VERSION, purpose, kid]).encode()
        with self._known(kid):
            return self._box.derive(info, kid)

    def key_check(self, kid: str) -> bytes:
        """A value stored beside the data that proves, later, which key `kid` stood for."""
        with self._known(kid):
            return self._box.key_check(kid)

    def missing_kids(self, checks: Iterable[tuple[str, bytes]], used: Iterable[str]) -> list[str]:
        """Check each key check whose kid the keyring holds (WrongKeyError for a key that is not
        the one it was made with); the kids in `used` the keyring lacks, sorted."""
        for kid, check in checks:
            if kid in self.keyring.keys:
                self.verify_key_check(kid, check)
        return sorted(kid for kid in used if kid not in self.keyring.keys)

    def verify_key_check(self, kid: str, check_blob: bytes) -> None:
        """Raise WrongKeyError unless `kid`'s key is the one `check_blob` was made with."""
        with self._known(kid):
            matches = self._box.matches(check_blob, kid)
        if not matches:
            raise WrongKeyError(
                f"the key for kid {kid!r} in {self.keyring.source} is not the key this "
                f"database's secrets were sealed with. Use the keyring (or "
                f"SMARTDUKA_ENCRYPTION_KEY) that belongs to this data folder; a new key cannot "
                f"open the old secrets."
            )


def _tampered(shop_id: str, field_name: str) -> TamperedSecretError:
    return TamperedSecretError(
        f"the stored {field_name.replace('_', ' ')} of shop {shop_id!r} fails authentication "
        "although the key is right: the database was altered or damaged. Set that secret again "
        "(smartduka shop set / smartduka enrol) or restore the database from a backup."
    )
