import Consensus

extension RefuseReason {
    /// What the reason says to a person: a stable code, Chinese, English.
    package var words: (code: String, zh: String, en: String) {
        switch self {
        case .noHolder, .notHolder:
            return ("lease.no_holder", "该号源暂时没有可用的持有节点（可能正在故障切换）；请稍后用同一请求号重试。",
                    "no node can book this block right now (a failover may be under way); retry shortly with the same request id.")
        case .slotTaken:
            return ("lease.slot_taken", "该号已被预约，请选择其他号源。", "this slot is already booked; choose another one.")
        case .noSuchSlot:
            return ("lease.no_such_slot", "该时段没有这个号。", "this block has no such slot.")
        case .notBooked:
            return ("lease.not_booked", "要取消的预约不存在或已取消。", "the booking to cancel does not exist or was already cancelled.")
        case .notYetOpen:
            return ("booking.not_open", "该时段尚未放号（按持有节点的时钟，就诊日前 7 天 15:00 放号）。",
                    "this session is not open for booking yet (by the holding node's clock, sessions open at 15:00 seven days before the visit).")
        case .released:
            return ("lease.released", "该预约已取消。", "this booking has been cancelled.")
        case .quotaExceeded:
            return ("quota.exceeded", "已达到预约数量上限。", "the booking quota is used up.")
        case .quotaUnavailable:
            return ("quota.unavailable", "暂时无法核对预约限额（限额服务不可达），为防止超额已拒绝；请稍后用同一请求号重试。",
                    "the booking quota cannot be checked right now (its holder is unreachable), so the booking was refused; retry shortly with the same request id.")
        case .holdExpired:
            return ("booking.hold_expired", "锁号已超时或已释放，号源已放回；请重新选择号源。",
                    "the hold ran out or was released and the slot went back on offer; please choose a slot again.")
        case .banned:
            return ("booking.banned", "因多次爽约或临近就诊退号，您的预约资格暂停中，期满后自动恢复。",
                    "booking is suspended for you after repeated no-shows or late cancellations; it resumes by itself when the ban ends.")
        case .unknownRequest:
            return ("lease.unknown_request", "没有该请求号的记录。", "there is no record of this request id.")
        case .requestMismatch:
            return ("lease.request_mismatch", "该请求号已用于另一笔预约；新的预约请使用新的请求号。",
                    "this request id was already used for another booking; use a new request id for a new booking.")
        case .sessionClosed:
            return ("floor.session_closed", "该出诊时段已结束，不能再报到或叫号。", "this session is over: no more check-ins or calls.")
        case .noAppointment:
            return ("floor.no_appointment", "该时段没有这个预约（未预约、未支付或已退号）。",
                    "this session has no such booking (never booked, not paid, or cancelled).")
        case .alreadyArrived:
            return ("floor.already_arrived", "该患者已报到。", "this patient has already checked in.")
        case .queueChanged:
            return ("floor.queue_changed", "叫号状态已被其他屏幕更新，请查看当前叫号后再操作。",
                    "another screen changed the queue first; look at who is called now and try again.")
        case .queueEmpty:
            return ("floor.queue_empty", "暂无候诊患者。", "nobody is waiting.")
        case .stockShort:
            return ("stock.short", "库存不足：该批号剩余数量少于要发的数量。", "not enough stock: the batch has fewer packages than asked.")
        case .batchExpired:
            return ("stock.expired", "该批号已过有效期，不能发药或入库。", "the batch is past its expiry date; it cannot be dispensed or received.")
        case .unknownBatch:
            return ("stock.unknown_batch", "药房没有这个批号。", "the pharmacy has no such batch.")
        case .batchMismatch:
            return ("stock.batch_mismatch", "该批号已入库，但有效期不同；请核对批号与有效期。", "this batch was received with another expiry date; check the batch and its expiry.")
        case .alreadyDispensed:
            return ("rx.already_dispensed", "这张处方已经发过药（可能在另一个窗口），不能重复发药。",
                    "this prescription was dispensed already (perhaps at another window); it is not dispensed twice.")
        case .notDispensed:
            return ("rx.not_dispensed", "这张处方还没有发药，不能退药。", "this prescription was not dispensed; nothing can be returned.")
        case .returnTooMuch:
            return ("stock.return_too_much", "退药数量多于已发且未退的数量。", "more is returned than was dispensed and not yet returned.")
        }
    }
}
