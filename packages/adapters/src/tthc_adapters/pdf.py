"""PDF preview of a letter through LibreOffice headless, when it is installed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

DEFAULT_TIMEOUT_S = 120.0


class PdfConversionError(RuntimeError):
    """LibreOffice is installed but did not produce the PDF."""


def find_soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def docx_to_pdf(docx_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                timeout_s: float = DEFAULT_TIMEOUT_S) -> Path | None:
    """`out_dir/<stem>.pdf`, or None when no LibreOffice is installed (the preview is optional)."""
    soffice = find_soffice()
    if soffice is None:
        return None
    docx_path, out_dir = Path(docx_path).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf = out_dir / f"{docx_path.stem}.pdf"
    pdf.unlink(missing_ok=True)  # LibreOffice can exit 0 without writing; never report a stale file
    # A throwaway profile: concurrent conversions would otherwise fight over the user's profile lock,
    # and a service account may have no writable home.
    with tempfile.TemporaryDirectory(prefix="tthc-soffice-") as profile:
        command = [
            soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless", "--norestore",
            "--convert-to", "pdf", "--outdir", str(out_dir), str(docx_path),
        ]
        # Own process group: soffice is a launcher script, so on timeout its children must go too.
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it finished just now
            proc.communicate()
            raise PdfConversionError(f"LibreOffice took more than {timeout_s:g} s on {docx_path}") from None
    if proc.returncode != 0 or not pdf.is_file():
        detail = (stderr or stdout).decode(errors="replace").strip()
        raise PdfConversionError(f"LibreOffice exit {proc.returncode} on {docx_path}: {detail}")
    return pdf
