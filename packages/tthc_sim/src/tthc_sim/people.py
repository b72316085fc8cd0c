"""Applicants: Vietnamese citizens (Kinh, Tày and Nùng family names common in Lạng Sơn) and organizations.

Everything here is invented; a name that happens to be real is a coincidence. The services must
never log these fields, which is one thing the demo's data lets a reviewer check.
"""

from __future__ import annotations

import random
import unicodedata
from typing import Any

# Family names with rough weights for Lạng Sơn (Tày and Nùng names such as Hoàng, Nông, Lương, Vi, Lăng).
_FAMILY = (
    ("Nguyễn", 22), ("Hoàng", 12), ("Nông", 8), ("Lương", 6), ("Trần", 6), ("Lê", 5), ("Vi", 4),
    ("Phạm", 4), ("Hà", 3), ("Lăng", 3), ("Chu", 3), ("Đinh", 2), ("Lộc", 2), ("Triệu", 2), ("Vũ", 3),
    ("Đặng", 2), ("Bùi", 2), ("Đỗ", 2), ("Dương", 2), ("Mã", 1), ("Hứa", 1), ("Ngô", 2), ("Phan", 1),
)  # fmt: skip
_MIDDLE_M = ("Văn", "Văn", "Văn", "Đức", "Minh", "Quốc", "Xuân", "Thành", "Hữu", "Công", "Ngọc", "Trung")
_MIDDLE_F = ("Thị", "Thị", "Thị", "Thu", "Thanh", "Ngọc", "Minh", "Hồng", "Kim", "Phương", "Bích")
_GIVEN_M = (
    "Hùng", "Dũng", "Tuấn", "Sơn", "Long", "Hải", "Thắng", "Cường", "Quân", "Việt", "Phúc", "Khánh",
    "Toàn", "Hiếu", "Đạt", "Nam", "Bình", "Thành", "Tài", "Lâm", "Kiên", "Huy", "Trọng", "Vĩnh",
)  # fmt: skip
_GIVEN_F = (
    "Lan", "Hương", "Hà", "Linh", "Mai", "Nga", "Hoa", "Thảo", "Trang", "Huyền", "Ngọc", "Dung",
    "Yến", "Nhung", "Hạnh", "Thủy", "Vân", "Chi", "Oanh", "Quyên", "Tâm", "Hằng", "Loan", "Duyên",
)  # fmt: skip

_ORG_FORMS = (
    ("Công ty TNHH", 40), ("Công ty Cổ phần", 25), ("Công ty TNHH MTV", 15), ("Hợp tác xã", 8),
    ("Doanh nghiệp tư nhân", 7), ("Chi nhánh Công ty TNHH", 5),
)  # fmt: skip
_ORG_TRADES = (
    "Thương mại và Dịch vụ", "Xây dựng", "Xuất nhập khẩu", "Vận tải", "Nông sản", "Du lịch",
    "Khai thác đá", "Dược phẩm", "Tư vấn Thiết kế", "Logistics", "Chế biến Lâm sản", "Thực phẩm",
)  # fmt: skip
_ORG_NAMES = (
    "Hoàng Long", "Kỳ Lừa", "Mẫu Sơn", "Đồng Đăng", "Tân Thanh", "Phú Lộc", "Hữu Nghị", "Bắc Sơn",
    "Minh Phát", "An Khang", "Thành Đạt", "Hồng Phong", "Việt Trung", "Chi Lăng", "Nà Phặc",
)  # fmt: skip

_STREETS = (
    "đường Bà Triệu", "đường Lê Lợi", "đường Trần Đăng Ninh", "đường Hùng Vương", "đường Ba Sơn",
    "đường Bắc Sơn", "đường Tam Thanh", "đường Lý Thái Tổ", "đường Phai Vệ", "đường Văn Vỉ",
)  # fmt: skip


def _ascii(text: str) -> str:
    """`Hoàng Long` -> `Hoang Long` (for e-mail addresses)."""
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in plain if not unicodedata.combining(ch))


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights=weights)[0]


def citizen(rng: random.Random, place: str) -> dict[str, Any]:
    female = rng.random() < 0.5
    middle = rng.choice(_MIDDLE_F if female else _MIDDLE_M)
    given = rng.choice(_GIVEN_F if female else _GIVEN_M)
    name = f"{_pick(rng, _FAMILY)} {middle} {given}"
    applicant: dict[str, Any] = {
        "kind": "citizen",
        "name": name,
        "address": f"Số {rng.randint(1, 250)}, {rng.choice(_STREETS)}, {place}, tỉnh Lạng Sơn",
        "phone": "0" + rng.choice(("912", "983", "868", "357", "204", "971", "886")) + f"{rng.randrange(10**6):06d}",
    }
    return applicant


def organization(rng: random.Random, place: str) -> dict[str, Any]:
    form = _pick(rng, _ORG_FORMS)
    trade = rng.choice(_ORG_TRADES)
    brand = rng.choice(_ORG_NAMES)
    name = f"{form} {brand}" if form == "Doanh nghiệp tư nhân" else f"{form} {trade} {brand}"
    slug = _ascii(brand).replace(" ", "").lower()
    return {
        "kind": "organization",
        "name": name,
        "address": f"Số {rng.randint(1, 400)}, {rng.choice(_STREETS)}, {place}, tỉnh Lạng Sơn",
        "phone": "0205" + f"{rng.randrange(10**7):07d}",
        "email": f"{slug}{rng.randint(1, 99)}@gmail.com",
    }
