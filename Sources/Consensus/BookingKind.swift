import Domain

/// What a booking record is. Every decision of the protocol switches on this, never on an id
/// prefix or a tag string. The wire and the booking log still carry the fields of the first
/// layout (`releases`, `tag`, `confirms`, `holdUntilMs`, `refusal`, and an expiry's id prefix):
/// `init?(id:block:fields:)` derives the kind from them and `fields` gives them back unchanged,
/// so a node of this version reads old logs and talks to nodes of the previous one.
public enum BookingKind: Hashable, Sendable {
    /// Takes a free slot for good. `quota`: the per-person quota it was booked under, so that
    /// whoever releases it gives that place back too.
    case booking(quota: QuotaTag?)
    /// Takes a free slot until `untilMs` (the holder's wall clock), unless confirmed by then.
    case hold(untilMs: Int64, quota: QuotaTag?)
    /// Keeps the slot of hold `of` for the same patient, for good. `label`: the caller's note
    /// (the payment method), which the protocol never reads.
    case confirmation(of: String, label: String)
    /// Frees the slot of booking or hold `of`, confirmed or not (a patient or staff cancelled).
    case cancellation(of: String)
    /// The holder's own release of hold `of`, which ran out unconfirmed.
    case expiry(of: String)
    /// Gives quota reservation `of` back: after its booking was cancelled (`refused` nil), or was
    /// refused for good (then a retry of the request hears that refusal again).
    case release(of: String, refused: RefuseReason?)
    /// A place under a per-person quota, in the patient's quota bucket.
    case quotaReservation(QuotaTag)
    /// A no-show or a late cancellation, in the patient's quota bucket (the ban ladder counts it).
    case strike(Strike)
    /// The request was refused for good; takes no slot. `requestTag`: the refused request's tag,
    /// kept only so the record travels unchanged.
    case refusal(RefuseReason, requestTag: String)
    /// An event of the session's queue (`SessionQueue`); takes no slot.
    case floor(FloorRecord)
    /// A movement of a pharmacy's stock (`StockLedger`), in the pharmacy's block; takes no slot.
    case stock(StockRecord)

    /// The booking a release of any sort (cancellation, expiry, reservation release) ends.
    public var released: String? {
        switch self {
        case .cancellation(let target), .expiry(let target), .release(let target, _): target
        case .booking, .hold, .confirmation, .quotaReservation, .strike, .refusal, .floor, .stock: nil
        }
    }

    /// The hold a confirmation keeps.
    public var confirmed: String? {
        if case .confirmation(let hold, _) = self { return hold }
        return nil
    }

    /// The status the record's slot has while the record is the slot's current one (nil: a
    /// refusal, which takes no slot). A quota place counts as a slot of its bucket.
    public var slotStatus: SlotStatus? {
        switch self {
        case .hold: .busyTentative
        case .booking, .confirmation, .quotaReservation, .strike: .busy
        case .cancellation, .expiry, .release: .free
        case .refusal, .floor, .stock: nil
        }
    }

    /// Whether the transition table lets a record of this kind become the current record of a
    /// slot that is `status` now. A booking without a hold is a hold confirmed at once
    /// (free → busy-tentative → busy); an expiry ends only a hold (busy-tentative → free); a
    /// cancellation frees a held or booked slot, never resumes a stopped session.
    public func mayFollow(_ status: SlotStatus) -> Bool {
        switch self {
        case .booking, .quotaReservation, .strike:
            status.canTransition(to: .busyTentative) && SlotStatus.busyTentative.canTransition(to: .busy)
        case .hold: status.canTransition(to: .busyTentative)
        case .confirmation: status == .busyTentative && status.canTransition(to: .busy)
        case .expiry: status == .busyTentative && status.canTransition(to: .free)
        case .cancellation, .release: (status == .busyTentative || status == .busy) && status.canTransition(to: .free)
        case .refusal, .floor, .stock: false
        }
    }
}

extension BookingKind {
    /// A record's fields in the layout of the wire and the booking log (PROTOCOL.md, "On the wire").
    public struct Fields: Hashable, Sendable {
        public var releases: String?
        public var tag: String
        public var confirms: String?
        public var holdUntilMs: Int64
        public var refusal: String?
        public init(releases: String? = nil, tag: String = "", confirms: String? = nil, holdUntilMs: Int64 = 0, refusal: String? = nil) {
            self.releases = releases; self.tag = tag; self.confirms = confirms; self.holdUntilMs = holdUntilMs; self.refusal = refusal
        }
    }

    /// The fields that say this kind on the wire and in the log.
    public var fields: Fields {
        switch self {
        case .booking(let quota): Fields(tag: quota?.encoded ?? "")
        case .hold(let until, let quota): Fields(tag: quota?.encoded ?? "", holdUntilMs: until)
        case .confirmation(let hold, let label): Fields(tag: label, confirms: hold)
        case .cancellation(let target), .expiry(let target): Fields(releases: target)
        case .release(let target, let refused): Fields(releases: target, tag: refused.map(RefusalRelease.tag) ?? "")
        case .quotaReservation(let quota): Fields(tag: quota.encoded)
        case .strike(let strike): Fields(tag: strike.encoded)
        case .refusal(let reason, let requestTag): Fields(tag: requestTag, refusal: reason.rawValue)
        case .floor(let record): Fields(tag: record.encoded)
        case .stock(let record): Fields(tag: record.encoded)
        }
    }

    /// The kind that `fields` of record `id` in `block` say, as the first layout meant them: an
    /// expiry by its id (`expire:<hold>`), a reservation, its release and a strike by their
    /// block (a quota bucket). Nil for fields no kind gives back unchanged (say, a release that
    /// also confirms): no version of this code writes those.
    public init?(id: String, block: BlockID, fields f: Fields) {
        let kind: BookingKind
        if let refusal = f.refusal {
            guard let reason = RefuseReason(rawValue: refusal) else { return nil }
            kind = .refusal(reason, requestTag: f.tag)
        } else if let target = f.releases {
            if id.hasPrefix(holdExpiryPrefix) {
                kind = .expiry(of: target)
            } else if isQuotaBucket(block) {
                kind = .release(of: target, refused: RefusalRelease.reason(tag: f.tag))
            } else {
                kind = .cancellation(of: target)
            }
        } else if let hold = f.confirms {
            kind = .confirmation(of: hold, label: f.tag)
        } else if isPharmacyBlock(block) {
            guard f.holdUntilMs == 0, let record = StockRecord(encoded: f.tag) else { return nil }
            kind = .stock(record)
        } else if !isQuotaBucket(block), f.holdUntilMs == 0, let record = FloorRecord(encoded: f.tag) {
            kind = .floor(record)
        } else if isQuotaBucket(block) {
            if let strike = Strike(encoded: f.tag) { kind = .strike(strike) }
            else if let quota = QuotaTag(encoded: f.tag) { kind = .quotaReservation(quota) }
            else { return nil }
        } else {
            let quota = QuotaTag(encoded: f.tag)
            kind = f.holdUntilMs > 0 ? .hold(untilMs: f.holdUntilMs, quota: quota) : .booking(quota: quota)
        }
        // Only what comes back byte for byte: anything else would change as it passes through.
        guard kind.fields == f else { return nil }
        self = kind
    }
}

/// Whether `block` is a per-person quota bucket (`quota/N`, defined by the leader) rather than a
/// doctor's session.
public func isQuotaBucket(_ block: BlockID) -> Bool { block.hasPrefix(quotaBucketPrefix) }

extension BookingRequest {
    /// The record this request asks the holder for, at the holder's wall time `wallMs` (a hold
    /// runs from then). Nil if its fields say no kind (the holder refuses it as `noSuchSlot`).
    func recordKind(wallMs: Int64) -> BookingKind? {
        let holdUntil = holdMs > 0 && targets == nil ? wallMs + holdMs : 0
        return BookingKind(id: id, block: block, fields: .init(releases: releases, tag: tag, confirms: confirms, holdUntilMs: holdUntil))
    }
}
