"""Safaricom's published certificates ship in the package and make a SecurityCredential."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from smartduka_tui.mpesa.certificates import published_certificate
from smartduka_tui.mpesa.security import security_credential

# Subject names of the two files Safaricom publishes (certs/SOURCE.md).
SUBJECTS = {True: "apigee.apicaller.safaricom.co.ke", False: "apicrypt.safaricom.co.ke"}


@pytest.mark.parametrize("production", [True, False])
def test_each_published_certificate_encrypts_an_initiator_password(production: bool) -> None:
    pem = published_certificate(production=production)
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [n.value for n in names] == [SUBJECTS[production]]
    credential = security_credential(SecretStr("Safaricom999!*!"), pem)
    # RSA-2048 with PKCS#1 v1.5: one 256-byte block, base64.
    assert len(base64.b64decode(credential.get_secret_value())) == 256
    assert "Safaricom999" not in credential.get_secret_value()


def test_sandbox_and_production_are_different_keys() -> None:
    keys = [
        x509.load_pem_x509_certificate(published_certificate(production=p)).public_key()
        for p in (True, False)
    ]
    assert all(isinstance(key, rsa.RSAPublicKey) for key in keys)
    assert len({key.public_numbers().n for key in keys if isinstance(key, rsa.RSAPublicKey)}) == 2
