"""Safaricom's published certificates for the initiator password, shipped in the package
(`certs/`, with their source in certs/SOURCE.md): public keys, no secret."""

from __future__ import annotations

from importlib import resources


def published_certificate(*, production: bool) -> bytes:
    """The PEM certificate Safaricom publishes for its sandbox or production Daraja."""
    name = "production.cer" if production else "sandbox.cer"
    return resources.files("smartduka_tui.mpesa").joinpath("certs", name).read_bytes()
