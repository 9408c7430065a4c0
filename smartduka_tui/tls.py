"""Which certificate authorities an outgoing HTTPS client trusts.

Every client here runs with `trust_env=False` (ambient proxy variables must not redirect
payments), which also makes httpx ignore `SSL_CERT_FILE`/`SSL_CERT_DIR`. A private relay or a
test's throwaway CA still needs those honoured, so they are read here on their own.
"""

from __future__ import annotations

import os
import ssl


def client_verify() -> ssl.SSLContext | bool:
    """The `verify=` for httpx: the CA file or folder the environment names, else the default."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return True
    return ssl.create_default_context(cafile=cafile, capath=capath)
