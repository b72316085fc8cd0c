"""Milliseconds per apology letter (Mẫu 04 DOCX), the reference path beside the compiled one, same run.

Target (issue 10, item 5): <= 3 ms a letter. Prints figures; not a test (the bytes are compared by
tests/unit/test_letter_fast.py). Run: .venv/bin/python packages/tthc_core/bench/bench_letters.py [N]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

from tthc_core.letter import DRAFT_NUMBER, LetterFields, compiled_template, render_letter, render_letter_reference

VN = timezone(timedelta(hours=7))


def letters(n: int) -> list[LetterFields]:
    """Drafts and issued letters of different applicants, citizens and organisations."""
    base = LetterFields(
        parent_agency="UBND tỉnh Lạng Sơn", issuing_agency="Sở Tư pháp", agency_name="Sở Tư pháp tỉnh Lạng Sơn",
        agency_code="000.00.12.H10", place="Lạng Sơn", number=DRAFT_NUMBER, issued_on=None,
        applicant_kind="citizen", applicant_name="Nguyễn Văn An", dossier_id="000.00.12.H10-260213-0001",
        procedure_name="Cấp Phiếu lý lịch tư pháp", received_at=datetime(2026, 2, 13, 10, tzinfo=VN),
        due_at=datetime(2026, 2, 27, 10, tzinfo=VN), reason="…………", new_due_at=datetime(2026, 3, 4, 10, tzinfo=VN),
        one_stop_unit_name="Trung tâm Phục vụ hành chính công tỉnh Lạng Sơn", signer_position="GIÁM ĐỐC",
    )
    out = []
    for i in range(n):
        issued = i % 3 == 0
        out.append(replace(
            base,
            applicant_kind="organization" if i % 2 else "citizen",
            applicant_name=f"Công ty TNHH Hoa & Lá <Việt> số {i}" if i % 2 else f"Trần Thị Bích Ngọc {i}",
            dossier_id=f"000.00.12.H10-260213-{i:04d}",
            number=f"{i:02d}/PXL" if issued else DRAFT_NUMBER,
            issued_on=date(2026, 3, 2) if issued else None,
            signer_position="KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC" if i % 5 == 0 else "GIÁM ĐỐC",
        ))
    return out


def ms_per_letter(render, batch: list[LetterFields]) -> tuple[float, float]:
    """(wall, CPU) milliseconds a letter: on a shared machine the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    for fields in batch:
        render(fields)
    return ((time.perf_counter() - wall) * 1000 / len(batch), (time.process_time() - cpu) * 1000 / len(batch))


def main(n: int = 2000) -> None:
    batch = letters(n)
    start = time.perf_counter()
    compiled_template()
    compile_ms = (time.perf_counter() - start) * 1000
    reference = ms_per_letter(render_letter_reference, batch[: max(50, n // 20)])
    fast = ms_per_letter(render_letter, batch)
    same = all(render_letter(f) == render_letter_reference(f) for f in batch[:20])
    print(f"reference (docxtpl + stable_docx): {reference[0]:7.2f} ms a letter ({reference[1]:.2f} ms CPU)")
    print(f"compiled template:                 {fast[0]:7.2f} ms a letter ({fast[1]:.2f} ms CPU; "
          f"{reference[0] / fast[0]:.0f}x; compiled once in {compile_ms:.0f} ms; first 20 byte-identical: {same})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
