"""The QR half-block text (mpesa/qr.py): modules read back exactly, 80x24 with a light quiet zone,
unreadable images refused; and the QR response's PNG checked as base64 PNG."""

from __future__ import annotations

import base64
import io

import pytest
import segno

from smartduka_tui.mpesa.qr import QrImageError, qr_modules, qr_to_half_blocks
from smartduka_tui.mpesa.statement import (
    QrCodeResponse,
    StatementParseError,
)

# --- QR ------------------------------------------------------------------------------------


def _png(content: str, scale: int) -> bytes:
    buffer = io.BytesIO()
    segno.make_qr(content, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_qr_modules_read_back_exactly_at_any_scale(scale: int) -> None:
    content = "SIMQR|BG|9000001|150|SALE-1|12345-678-1"
    expected = segno.make_qr(content, error="m")
    wanted = [[bool(cell) for cell in row] for row in expected.matrix]
    assert qr_modules(_png(content, scale)) == wanted


def test_qr_half_blocks_fit_80x24_with_a_light_quiet_zone() -> None:
    lines = qr_to_half_blocks(_png("SIMQR|BG|9000001|150|SALE-1|12345-678-1", 4))
    modules = segno.make_qr("SIMQR|BG|9000001|150|SALE-1|12345-678-1", error="m").symbol_size(
        border=2
    )[0]
    assert len(lines) == (modules + 1) // 2 <= 24
    assert {len(line) for line in lines} == {modules} and modules <= 80
    assert set(lines[0]) == {"█"}  # the quiet zone is light
    assert set("".join(lines)) <= {" ", "▀", "▄", "█"}


def test_qr_images_that_cannot_be_read_are_refused() -> None:
    with pytest.raises(QrImageError, match="not a readable PNG"):
        qr_to_half_blocks(b"GIF89a")
    blank = io.BytesIO()
    segno.make_qr("x").save(blank, kind="png", scale=1, dark="white", light="white")
    with pytest.raises(QrImageError, match="blank"):
        qr_to_half_blocks(blank.getvalue())
    with pytest.raises(QrImageError, match="does not fit"):
        qr_to_half_blocks(_png("A" * 300, 2))


def test_qr_response_png_must_be_base64_png() -> None:
    good = QrCodeResponse.model_validate({"QRCode": base64.b64encode(_png("x", 2)).decode()})
    assert good.png().startswith(b"\x89PNG")
    with pytest.raises(StatementParseError, match="not a PNG"):
        QrCodeResponse.model_validate({"QRCode": base64.b64encode(b"GIF89a....").decode()}).png()
    with pytest.raises(StatementParseError, match="not base64"):
        QrCodeResponse.model_validate({"QRCode": "!!!!!!!!"}).png()
