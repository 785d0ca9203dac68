"""A PDF's first page as a PNG, for the admin's look at a lead magnet (PDFium, loaded only
when an image is made)."""

from __future__ import annotations

import io
import threading

PREVIEW_WIDTH = 800  # pixels across the first-page image the admin shows


_PDFIUM = threading.Lock()  # PDFium is not thread-safe: web threads and the worker share it


def render_first_page(pdf: bytes, width: int = PREVIEW_WIDTH) -> bytes:
    """The PDF's first page as a PNG `width` pixels wide, in the page's own proportions."""
    import pypdfium2  # loaded only when an image is made

    with _PDFIUM:
        document = pypdfium2.PdfDocument(pdf)
        try:
            page = document[0]
            points_wide, _ = page.get_size()
            image = page.render(scale=width / points_wide).to_pil()
        finally:
            document.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
