"""The SecurityCredential (mpesa/security.py): the initiator password sealed to Safaricom's
certificate with PKCS#1 v1.5, PEM or DER, and every refusal said without the password."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from smartduka_tui.mpesa.security import SecurityCredentialError, security_credential


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test only")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


CERTIFICATE = _certificate(RSA_KEY)


# --- SecurityCredential --------------------------------------------------------------------


def test_security_credential_decrypts_to_the_password_with_pkcs1_v15() -> None:
    credential = security_credential(SecretStr("Initiator-pass 1"), CERTIFICATE)
    ciphertext = base64.b64decode(credential.get_secret_value())
    assert len(ciphertext) == 256
    assert RSA_KEY.decrypt(ciphertext, padding.PKCS1v15()) == b"Initiator-pass 1"
    assert "Initiator-pass" not in repr(credential)


def test_security_credential_accepts_der_and_differs_each_time() -> None:
    der = x509.load_pem_x509_certificate(CERTIFICATE).public_bytes(serialization.Encoding.DER)
    first = security_credential(SecretStr("pw"), der).get_secret_value()
    second = security_credential(SecretStr("pw"), der).get_secret_value()
    assert first != second  # random padding
    assert RSA_KEY.decrypt(base64.b64decode(second), padding.PKCS1v15()) == b"pw"


@pytest.mark.parametrize(
    ("password", "certificate", "message"),
    [
        ("pw", "junk", "not a PEM or DER X.509 certificate"),
        ("pw", "ec", "does not hold an RSA key"),
        ("", "rsa", "initiator password is empty"),
        ("x" * 246, "rsa", "longer than the 245 bytes"),
    ],
    ids=["not-a-certificate", "not-rsa", "empty-password", "too-long"],
)
def test_security_credential_refusals_say_why_without_the_password(
    password: str, certificate: str, message: str
) -> None:
    pem = {
        "junk": b"not a certificate",
        "ec": _certificate(ec.generate_private_key(ec.SECP256R1())),
        "rsa": CERTIFICATE,
    }[certificate]
    with pytest.raises(SecurityCredentialError, match=message) as refused:
        security_credential(SecretStr(password), pem)
    if password:
        assert password not in str(refused.value)
