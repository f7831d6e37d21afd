"""``GET /ca.crt``: the hub's CA certificate, for a phone to install (docs/web-desk.md, "Trusting
the hub").

It answers without a key: a CA certificate is public, and what makes installing it safe is not
where it came from but its fingerprint, which the resident compares with the one ``intercom web
add`` printed on the hub. 404 when the hub serves a certificate its CA did not issue (an
installer's, or the self-signed one of a hub made before the CA).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

from .config import HubConfig
from .tls import authority_certificate

CA_PATH = "/ca.crt"
# The type Android's "Install a certificate" and iOS's profile installer both take; DER, which
# every installer reads (not all take PEM).
CA_MEDIA_TYPE = "application/x-x509-ca-cert"


def install(app: FastAPI, config: HubConfig) -> None:
    """Serve :data:`CA_PATH` from ``app``."""

    @app.get(CA_PATH, include_in_schema=False)
    async def ca_certificate() -> Response:
        ca_path = authority_certificate(config.data_dir, config.cert_file)
        if ca_path is None:
            raise HTTPException(404, "this hub's certificate was not issued by a CA of its own")
        der = x509.load_pem_x509_certificate(ca_path.read_bytes()).public_bytes(serialization.Encoding.DER)
        return Response(
            der,
            media_type=CA_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="intercom-hub-ca.crt"', "Cache-Control": "no-cache"},
        )
