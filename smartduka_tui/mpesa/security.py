"""The SecurityCredential of Transaction Status and Reversal (REFERENCE.md section 7).

It is the initiator (API operator) password encrypted with the RSA public key in Safaricom's
certificate, PKCS#1 v1.5 padding, then base64. Sandbox and production each have a public
certificate; the simulator serves its own. The password never appears in an error or a repr.
"""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

_PKCS1_V15_OVERHEAD = 11


class SecurityCredentialError(ValueError):
    """The certificate or the password cannot make a SecurityCredential; the message says why."""


def load_certificate_key(certificate: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM or DER certificate."""
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            loaded = x509.load_pem_x509_certificate(certificate)
        else:
            loaded = x509.load_der_x509_certificate(certificate)
    except ValueError:
        raise SecurityCredentialError(
            "the M-Pesa certificate is not a PEM or DER X.509 certificate"
        ) from None
    key = loaded.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SecurityCredentialError("the M-Pesa certificate does not hold an RSA key")
    return key


def security_credential(password: SecretStr, certificate: bytes) -> SecretStr:
    """base64(RSA-PKCS#1-v1.5(password)) under the certificate's key. A new random padding each
    call, so two credentials for one password differ; Safaricom decrypts either."""
    key = load_certificate_key(certificate)
    plain = password.get_secret_value().encode("utf-8")
    if not plain:
        raise SecurityCredentialError("the initiator password is empty")
    longest = key.key_size // 8 - _PKCS1_V15_OVERHEAD
    if len(plain) > longest:
        raise SecurityCredentialError(
            f"the initiator password is longer than the {longest} bytes this key can hold"
        )
    encrypted = key.encrypt(plain, padding.PKCS1v15())
    return SecretStr(base64.b64encode(encrypted).decode("ascii"))
