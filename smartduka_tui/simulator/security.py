"""The simulator's stand-in for Safaricom's public-key certificate.

Daraja's SecurityCredential is the initiator password RSA-encrypted (PKCS#1 v1.5) with the
certificate Safaricom publishes, then base64-encoded (REFERENCE.md section 7). The simulator makes
its own key pair and self-signed certificate the first time one is needed, so no real key or
secret ever ships; `GET /__sim/certificate` hands the certificate to clients and tests.
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

_KEY_BITS = 2048


class CredentialAuthority:
    """Holds the simulator's private key; decrypts SecurityCredentials sent to it."""

    @functools.cached_property
    def _pair(self) -> tuple[rsa.RSAPrivateKey, bytes]:
        """The key and its self-signed certificate (PEM), made the first time one is needed."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartduka-sim Daraja stand-in")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return key, certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_pem(self) -> bytes:
        """The public certificate (PEM) that clients encrypt initiator passwords with."""
        return self._pair[1]

    def decrypt(self, credential: str) -> str | None:
        """The password inside a SecurityCredential, or None when it is not one of ours."""
        try:
            ciphertext = base64.b64decode(credential, validate=True)
            plain = self._pair[0].decrypt(ciphertext, padding.PKCS1v15())
            return plain.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
