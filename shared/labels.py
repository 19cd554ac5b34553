"""What citizens read of their dossier, in Vietnamese: its states, open states and steps (the lookup's
answer and page, the SMS replies)."""

STATES = {
    "processing": "Đang giải quyết",
    "awaiting_supplement": "Cần bổ sung hồ sơ",
    "paused": "Chờ thực hiện nghĩa vụ tài chính",
    "withdrawn": "Đã rút hồ sơ",
    "stopped": "Dừng giải quyết",
    "resolved": "Đã có kết quả",
    "returned": "Đã trả kết quả",
}
OPEN_STATES = {
    "within_deadline": "Trong hạn",
    "due_soon": "Sắp đến hạn trả kết quả",
    "overdue": "Quá hạn",
    "awaiting_supplement": "Tạm dừng, chờ bổ sung",
    "paused": "Tạm dừng, chờ nghĩa vụ tài chính",
}
STEPS = {
    "dossier.received": "Tiếp nhận hồ sơ",
    "dossier.transferred": "Chuyển bộ phận giải quyết",
    "dossier.supplement_requested": "Yêu cầu bổ sung hồ sơ",
    "dossier.supplement_received": "Đã nhận hồ sơ bổ sung",
    "dossier.obligation_requested": "Yêu cầu thực hiện nghĩa vụ tài chính",
    "dossier.obligation_fulfilled": "Đã thực hiện nghĩa vụ tài chính",
    "dossier.withdrawn": "Công dân rút hồ sơ",
    "dossier.stopped": "Dừng giải quyết",
    "dossier.resolved": "Đã có kết quả",
    "dossier.returned": "Đã trả kết quả",
    "dossier.signature_requested": "Trình ký kết quả",
    "dossier.signed": "Đã ký số kết quả",
    "dossier.payment_completed": "Đã thanh toán phí, lệ phí",
    "dossier.digitized": "Số hóa hồ sơ",
    "dossier.rated": "Đánh giá mức độ hài lòng",
    "dossier.apology_issued": "Thư xin lỗi, hẹn lại ngày trả",
    "dossier.result_issued": "Đã có kết quả điện tử",
}
