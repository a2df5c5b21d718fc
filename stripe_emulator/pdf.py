"""A minimal, valid one-page PDF with text lines, written by hand (no dependencies)."""

from __future__ import annotations

import unicodedata


def _win_ansi(text: str) -> bytes:
    """`text` in the fonts' WinAnsiEncoding (Windows-1252: Latin-1 plus – — • € …
    “ ” ‘ ’ ™). A character it lacks becomes its closest ASCII form ("ő" → "o"),
    else "?"."""
    out = bytearray()
    for char in text:
        try:
            out += char.encode("cp1252")
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore")
            out += plain or b"?"
    return bytes(out)


def _literal(text: str) -> bytes:
    """A PDF literal string of `text` for a content stream: (…) with \\ ( ) escaped."""
    raw = _win_ansi(text)
    return (
        b"("
        + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        + b")"
    )


def _text_string(text: str) -> bytes:
    """A PDF text string (document information: the title) in UTF-16BE with its
    byte order mark, so any character survives."""
    return b"<" + ("\ufeff" + text).encode("utf-16-be").hex().upper().encode() + b">"


def text_pdf(lines: list[tuple[str, int, bool]], *, title: str) -> bytes:
    """`lines` are (text, font size, bold); laid out top-down on an A4 page."""
    commands = [b"BT", b"50 790 Td"]
    first = True
    for text, size, bold in lines:
        if not first:
            commands.append(f"0 -{int(size * 1.6)} Td".encode())
        first = False
        commands.append(f"/{'F2' if bold else 'F1'} {size} Tf".encode())
        commands.append(_literal(text) + b" Tj")
    commands.append(b"ET")
    stream = b"\n".join(commands)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + b" >>\nstream\n"
        + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold "
        b"/Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _text_string(title) + b" /Producer (Stripe emulator) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R "
        ">>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return bytes(out)
