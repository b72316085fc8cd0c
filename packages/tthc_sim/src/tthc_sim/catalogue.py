"""Who handles what in tỉnh Lạng Sơn: agencies, procedures (TTHC), fields, statutory durations.

Agency codes follow the national format of the electronic-document identifiers (`000.00.12.H10`:
unit, parent, department, province), with the codes the spec's examples use (Sở Tư pháp
`000.00.12.H10`, Sở Tài nguyên và Môi trường `000.00.20.H10`, UBND xã Hữu Lũng `000.30.21.H10`).
Procedure codes look like the national database's `MaTTHC` (`1.001234`, `2.000567`); the names
and statutory durations are those of the published procedures, rounded where the law says
"ngay trong ngày" (the same day: 4 working hours here).

The organisation follows the date of the generated day: from 01/3/2025 several departments were
merged (Sở Kế hoạch và Đầu tư into Sở Tài chính, Sở Giao thông vận tải into Sở Xây dựng, Sở Lao
động - Thương binh và Xã hội into Sở Nội vụ, Sở Tài nguyên và Môi trường with agriculture into Sở
Nông nghiệp và Môi trường), and from 01/7/2025 the district level is gone: communes and wards
(xã, phường) deal with citizens directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

PROVINCE = "tỉnh Lạng Sơn"
PLACE_NAME = "Lạng Sơn"
MERGER_OF_DEPARTMENTS = date(2025, 3, 1)
TWO_LEVEL_LOCAL_GOVERNMENT = date(2025, 7, 1)


@dataclass(frozen=True)
class Unit:
    code: str
    name: str

    def as_agency(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name}


# key -> (code, name until the merger, (code, name) from 01/3/2025)
_DEPARTMENTS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "ubnd_tinh": ("000.00.00.H10", "Ủy ban nhân dân tỉnh Lạng Sơn", None),
    "noi_vu": ("000.00.05.H10", "Sở Nội vụ tỉnh Lạng Sơn", None),
    "tai_chinh": ("000.00.06.H10", "Sở Tài chính tỉnh Lạng Sơn", None),
    "khdt": ("000.00.07.H10", "Sở Kế hoạch và Đầu tư tỉnh Lạng Sơn", ("000.00.06.H10", "Sở Tài chính tỉnh Lạng Sơn")),
    "tu_phap": ("000.00.12.H10", "Sở Tư pháp tỉnh Lạng Sơn", None),
    "cong_thuong": ("000.00.13.H10", "Sở Công Thương tỉnh Lạng Sơn", None),
    "y_te": ("000.00.14.H10", "Sở Y tế tỉnh Lạng Sơn", None),
    "gtvt": ("000.00.16.H10", "Sở Giao thông vận tải tỉnh Lạng Sơn", ("000.00.17.H10", "Sở Xây dựng tỉnh Lạng Sơn")),
    "xay_dung": ("000.00.17.H10", "Sở Xây dựng tỉnh Lạng Sơn", None),
    "ldtbxh": (
        "000.00.18.H10",
        "Sở Lao động - Thương binh và Xã hội tỉnh Lạng Sơn",
        ("000.00.05.H10", "Sở Nội vụ tỉnh Lạng Sơn"),
    ),
    "tnmt": (
        "000.00.20.H10",
        "Sở Tài nguyên và Môi trường tỉnh Lạng Sơn",
        ("000.00.20.H10", "Sở Nông nghiệp và Môi trường tỉnh Lạng Sơn"),
    ),
    # Land registration office under the environment department: where land dossiers are transferred.
    "vpdk_dat_dai": (
        "000.01.20.H10",
        "Văn phòng Đăng ký đất đai tỉnh Lạng Sơn",
        ("000.01.20.H10", "Văn phòng Đăng ký đất đai tỉnh Lạng Sơn"),
    ),
    "cuc_thue": ("000.00.90.H10", "Thuế tỉnh Lạng Sơn", None),
}

# Communes and wards from 01/7/2025 (the first is the one in the spec's example 05).
_COMMUNES_2025 = (
    "xã Hữu Lũng", "phường Đông Kinh", "phường Lương Văn Tri", "phường Tam Thanh", "phường Kỳ Lừa",
    "xã Cao Lộc", "xã Đồng Đăng", "xã Chi Lăng", "xã Lộc Bình", "xã Na Dương", "xã Đình Lập",
    "xã Văn Quan", "xã Bình Gia", "xã Bắc Sơn", "xã Tràng Định", "xã Thất Khê", "xã Na Sầm",
    "xã Hoàng Văn Thụ", "xã Mẫu Sơn", "xã Yên Bình",
)  # fmt: skip
# Before: the districts and the city, and a few wards and communes of the city and of Hữu Lũng.
_DISTRICTS_BEFORE = (
    "Thành phố Lạng Sơn", "huyện Cao Lộc", "huyện Hữu Lũng", "huyện Chi Lăng", "huyện Lộc Bình",
    "huyện Văn Lãng", "huyện Tràng Định", "huyện Bình Gia", "huyện Văn Quan", "huyện Bắc Sơn",
    "huyện Đình Lập",
)  # fmt: skip
_COMMUNES_BEFORE = (
    "thị trấn Hữu Lũng", "phường Đông Kinh", "phường Vĩnh Trại", "phường Chi Lăng", "phường Tam Thanh",
    "phường Hoàng Văn Thụ", "thị trấn Cao Lộc", "thị trấn Đồng Đăng", "xã Mai Pha", "xã Hoàng Đồng",
)  # fmt: skip


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    field_code: str
    field_name: str
    owner: str  # department key, or "commune" / "district"
    duration: tuple[float, str]
    weight: float  # relative share of the day's dossiers
    online_share: float = 0.35
    handled_by: str | None = None  # the competent agency when it is not the receiving one
    transfer_to: str | None = None  # where such dossiers are often transferred during processing
    financial_obligation: bool = False  # land dossiers wait for the applicant's tax and fees
    organizations: float = 0.1  # share of applicants that are organizations
    online: str | None = None  # offered as an online public service: "full" (toàn trình) or "partial"


def _p(code, name, field_code, field_name, owner, value, unit, weight, **kw) -> Procedure:
    return Procedure(code, name, field_code, field_name, owner, (value, unit), weight, **kw)


PROCEDURES: tuple[Procedure, ...] = (
    # Sở Tư pháp
    _p("1.001234", "Cấp Phiếu lý lịch tư pháp", "G13-TP01", "Lý lịch tư pháp", "tu_phap", 10, "working_days", 9,
       online_share=0.55, organizations=0.0, online="full"),
    _p("1.001876", "Xác nhận có quốc tịch Việt Nam", "G13-TP03", "Quốc tịch", "tu_phap", 20, "working_days", 0.4,
       organizations=0.0),
    _p("1.001912", "Nhập quốc tịch Việt Nam", "G13-TP03", "Quốc tịch", "tu_phap", 3, "months", 0.4,
       organizations=0.0),
    _p("1.008724", "Đăng ký hoạt động Văn phòng công chứng", "G13-TP07", "Công chứng", "tu_phap", 10, "working_days",
       0.3, organizations=1.0),
    # Sở Kế hoạch và Đầu tư (Sở Tài chính from 01/3/2025)
    _p("2.000567", "Đăng ký thành lập doanh nghiệp tư nhân", "G09-KH02", "Thành lập và hoạt động doanh nghiệp",
       "khdt", 3, "working_days", 3, online_share=0.85, organizations=0.3, online="full"),
    _p("2.001610", "Đăng ký thành lập công ty TNHH một thành viên", "G09-KH02",
       "Thành lập và hoạt động doanh nghiệp", "khdt", 3, "working_days", 4, online_share=0.85,
       organizations=0.4, online="full"),
    _p("2.002041", "Đăng ký thay đổi nội dung đăng ký doanh nghiệp", "G09-KH02",
       "Thành lập và hoạt động doanh nghiệp", "khdt", 3, "working_days", 6, online_share=0.9,
       organizations=1.0, online="full"),
    _p("1.009645", "Cấp Giấy chứng nhận đăng ký đầu tư đối với dự án không thuộc diện chấp thuận chủ trương đầu tư",
       "G09-KH01", "Đầu tư tại Việt Nam", "khdt", 15, "working_days", 0.6, organizations=1.0),
    # Sở Tài nguyên và Môi trường (Sở Nông nghiệp và Môi trường from 01/3/2025)
    _p("1.004227", "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất", "G14-TN01",
       "Đất đai", "tnmt", 10, "working_days", 9, transfer_to="vpdk_dat_dai", financial_obligation=True,
       organizations=0.08, online="partial"),
    _p("1.004203", "Cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất lần đầu",
       "G14-TN01", "Đất đai", "tnmt", 20, "working_days", 3, transfer_to="vpdk_dat_dai", financial_obligation=True,
       organizations=0.05),
    _p("1.004269", "Giao đất, cho thuê đất không thông qua đấu giá quyền sử dụng đất", "G14-TN01", "Đất đai", "tnmt",
       20, "working_days", 0.5, handled_by="ubnd_tinh", financial_obligation=True, organizations=1.0),
    _p("1.010728", "Cấp giấy phép môi trường", "G14-TN04", "Môi trường", "tnmt", 30, "calendar_days", 0.4,
       organizations=1.0),
    _p("1.000778", "Cấp Giấy phép khai thác khoáng sản", "G14-TN03", "Địa chất và khoáng sản", "tnmt", 3, "months",
       0.4, handled_by="ubnd_tinh", organizations=1.0),
    _p("1.004258", "Gia hạn giấy phép thăm dò khoáng sản", "G14-TN03", "Địa chất và khoáng sản", "tnmt", 1, "months",
       0.4, handled_by="ubnd_tinh", organizations=1.0),
    # Sở Xây dựng (with Giao thông vận tải from 01/3/2025)
    _p("1.009972", "Cấp giấy phép xây dựng mới đối với công trình cấp I, cấp II", "G15-XD01", "Hoạt động xây dựng",
       "xay_dung", 20, "working_days", 1.2, organizations=0.7),
    _p("1.009987", "Cấp chứng chỉ hành nghề hoạt động xây dựng hạng II, hạng III", "G15-XD01", "Hoạt động xây dựng",
       "xay_dung", 20, "working_days", 1, online_share=0.6, organizations=0.0, online="partial"),
    _p("1.009794", "Thẩm định báo cáo nghiên cứu khả thi đầu tư xây dựng", "G15-XD01", "Hoạt động xây dựng",
       "xay_dung", 25, "calendar_days", 0.5, organizations=1.0),
    _p("1.002861", "Cấp phù hiệu xe ô tô kinh doanh vận tải", "G16-GT01", "Đường bộ", "gtvt", 2, "working_days", 4,
       online_share=0.7, organizations=0.6, online="full"),
    # Sở Công Thương
    _p("2.000620", "Cấp Giấy phép bán lẻ sản phẩm rượu", "G10-CT02", "Lưu thông hàng hóa trong nước", "cong_thuong",
       10, "working_days", 0.8, organizations=0.6),
    _p("2.000591", "Cấp Giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm", "G10-CT05", "An toàn thực phẩm",
       "cong_thuong", 15, "working_days", 0.8, organizations=0.7, online="partial"),
    # Sở Y tế
    _p("1.003567", "Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh", "G19-YT01", "Khám bệnh, chữa bệnh", "y_te", 20,
       "working_days", 1.2, organizations=0.0),
    _p("1.002944", "Cấp Giấy chứng nhận đủ điều kiện kinh doanh dược", "G19-YT03", "Dược", "y_te", 20,
       "working_days", 0.8, organizations=0.8),
    # Sở Lao động - Thương binh và Xã hội (Sở Nội vụ from 01/3/2025)
    _p("1.000459", "Cấp giấy phép lao động cho người lao động nước ngoài làm việc tại Việt Nam", "G20-LD01",
       "Việc làm", "ldtbxh", 5, "working_days", 1.2, online_share=0.6, organizations=1.0, online="partial"),
    _p("1.001776", "Giải quyết chế độ trợ cấp một lần đối với người có công", "G20-LD05", "Người có công", "ldtbxh",
       12, "working_days", 0.8, organizations=0.0),
    # Sở Nội vụ
    _p("1.003958", "Công nhận ban vận động thành lập hội", "G05-NV02", "Tổ chức phi chính phủ", "noi_vu", 30,
       "calendar_days", 0.2, organizations=1.0),
    # Communes and wards (the district for business households before 01/7/2025)
    _p("1.001193", "Đăng ký khai sinh", "G13-TP04", "Hộ tịch", "commune", 4, "working_hours", 14, online_share=0.3,
       organizations=0.0, online="full"),
    _p("1.000894", "Đăng ký kết hôn", "G13-TP04", "Hộ tịch", "commune", 1, "working_days", 3,
       organizations=0.0, online="partial"),
    _p("1.004873", "Cấp Giấy xác nhận tình trạng hôn nhân", "G13-TP04", "Hộ tịch", "commune", 3, "working_days", 6,
       online_share=0.45, organizations=0.0, online="partial"),
    _p("1.000656", "Đăng ký khai tử", "G13-TP04", "Hộ tịch", "commune", 0.5, "working_days", 2, organizations=0.0),
    _p("1.003003", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", "G13-TP05", "Chứng thực", "commune", 8,
       "working_hours", 12, online_share=0.05, organizations=0.15),
    _p("2.000815", "Chứng thực chữ ký trong các giấy tờ, văn bản", "G13-TP05", "Chứng thực", "commune", 8,
       "working_hours", 4, online_share=0.05, organizations=0.05, online="partial"),
    _p("1.003349", "Hòa giải tranh chấp đất đai", "G14-TN01", "Đất đai", "commune", 45, "calendar_days", 0.4,
       organizations=0.0),
    _p("2.000364", "Đăng ký thành lập hộ kinh doanh", "G09-KH03", "Thành lập và hoạt động của hộ kinh doanh",
       "district", 3, "working_days", 5, online_share=0.5, organizations=0.0),
)  # fmt: skip


def _commune_code(i: int) -> str:
    return f"000.{30 + i:02d}.21.H10"


class Catalogue:
    """The province's organisation as it stood on `day`."""

    def __init__(self, day: date):
        self.day = day
        self.departments: dict[str, Unit] = {}
        for key, (code, name, merged) in _DEPARTMENTS.items():
            if merged is not None and day >= MERGER_OF_DEPARTMENTS:
                code, name = merged
            self.departments[key] = Unit(code, name)
        if day >= TWO_LEVEL_LOCAL_GOVERNMENT:
            self.communes = tuple(Unit(_commune_code(i), f"UBND {n}") for i, n in enumerate(_COMMUNES_2025))
            self.districts = self.communes  # business households register at the commune now
        else:
            self.communes = tuple(Unit(_commune_code(i), f"UBND {n}") for i, n in enumerate(_COMMUNES_BEFORE))
            self.districts = tuple(
                Unit(f"000.00.{31 + i:02d}.H10", f"UBND {n}") for i, n in enumerate(_DISTRICTS_BEFORE)
            )

    def unit(self, key: str) -> Unit:
        return self.departments[key]


def province_calendar() -> str:
    """The province's calendar file (deadlines.md §1) as the demo gives it to the services: the
    procedures offered as online public services, for the `online_*` figures (indices.md)."""
    lines = ["# The simulated province's calendar file (tthc_sim): its online public services.",
             "procedures:"]
    lines += [f'  "{p.code}": {{online: {p.online}}}' for p in PROCEDURES if p.online is not None]
    return "\n".join(lines) + "\n"


def all_agencies() -> dict[str, str]:
    """Every agency code the simulator may name (before and after the 2025 reforms) -> a name.

    The local stack gives each of them an officer key, so the demo can read every agency's apologies.
    """
    found: dict[str, str] = {}
    for day in (date(2025, 1, 1), date(2025, 6, 1), date(2025, 7, 1)):
        cat = Catalogue(day)
        for unit in (*cat.departments.values(), *cat.communes, *cat.districts):
            found.setdefault(unit.code, unit.name)
    return found
