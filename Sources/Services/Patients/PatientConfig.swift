import Consensus
import Foundation

/// The patient API and its anti-scalping rules (`patients` in the node config; every field has a
/// default, documented in `Cluster/CONFIG.md`). The booking policy (quotas, bans) must be the same
/// on every node: the holder of a patient's quota bucket applies its own.
public struct PatientConfig: Codable, Sendable, Hashable {
    /// HTTPS listener for patients (the node certificate serves it; clients trust the cluster CA).
    public var host: String = "127.0.0.1"
    public var port: Int = 0
    /// How long a hold waits for payment before its holder releases it.
    public var holdMinutes: Int = 15
    /// One-time codes: digits, lifetime, wrong tries allowed.
    public var otpTTLSeconds: Int = 300
    public var otpMaxTries: Int = 5
    /// Codes per mobile: at most `otpPerMobileBurst` at once, then one per `otpPerMobileEverySeconds`.
    public var otpPerMobileBurst: Int = 3
    public var otpPerMobileEverySeconds: Int = 60
    /// Requests per client address: a burst, then this many per second.
    public var perAddressBurst: Int = 40
    public var perAddressPerSecond: Double = 20
    /// Requests this node works on at once; beyond it a request is refused at once (503
    /// `server.busy`, `Retry-After: 1`) instead of queueing: at the rush a fast "busy, retry" beats
    /// an answer after many seconds, and the requests taken in stay fast.
    public var maxInFlight: Int = 64
    /// A session token's lifetime.
    public var sessionHours: Int = 12
    /// A connection whose first request head has not arrived this long after it opened (TLS
    /// handshake included) is closed: a connection that never asks for anything only holds a socket.
    public var firstRequestTimeoutSeconds: Int = 10
    /// A connection with nothing read or answered for this long is closed (between keep-alive
    /// requests, or a request whose head or body stalls). Long enough for an app's connection to
    /// outlast a patient reading a slot list.
    public var idleTimeoutSeconds: Int = 60
    /// Patient connections open at once; one more is closed as soon as it is accepted, so that
    /// connections alone cannot use up the node's file descriptors (its peers and its database
    /// need them too; the systemd unit allows 65,536).
    public var maxConnections: Int = 10_000
    /// Quotas and the ban ladder (`QuotaPolicy`), applied by every quota bucket holder.
    public var policy: QuotaPolicy = .standard
    /// Where SMS go: "file" (JSON lines in `sms_file`) or "webhook" (HTTP POST to `sms_webhook_url`).
    public var smsSender: String = "file"
    public var smsFile: String = "sms-sent.jsonl"
    public var smsWebhookURL: String?
    /// Reminders for tomorrow's visits go out from this hour (Asia/Shanghai).
    public var reminderHour: Int = 18

    public init() {}

    package enum CodingKeys: String, CodingKey {
        case host, port, holdMinutes = "hold_minutes", otpTTLSeconds = "otp_ttl_s", otpMaxTries = "otp_max_tries"
        case otpPerMobileBurst = "otp_per_mobile_burst", otpPerMobileEverySeconds = "otp_per_mobile_every_s"
        case perAddressBurst = "per_address_burst", perAddressPerSecond = "per_address_per_s", sessionHours = "session_hours"
        case maxInFlight = "max_in_flight", firstRequestTimeoutSeconds = "first_request_timeout_s", idleTimeoutSeconds = "idle_timeout_s"
        case maxConnections = "max_connections"
        case policy, smsSender = "sms_sender", smsFile = "sms_file", smsWebhookURL = "sms_webhook_url", reminderHour = "reminder_hour"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PatientConfig()
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? d.host
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? d.port
        holdMinutes = try c.decodeIfPresent(Int.self, forKey: .holdMinutes) ?? d.holdMinutes
        otpTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .otpTTLSeconds) ?? d.otpTTLSeconds
        otpMaxTries = try c.decodeIfPresent(Int.self, forKey: .otpMaxTries) ?? d.otpMaxTries
        otpPerMobileBurst = try c.decodeIfPresent(Int.self, forKey: .otpPerMobileBurst) ?? d.otpPerMobileBurst
        otpPerMobileEverySeconds = try c.decodeIfPresent(Int.self, forKey: .otpPerMobileEverySeconds) ?? d.otpPerMobileEverySeconds
        perAddressBurst = try c.decodeIfPresent(Int.self, forKey: .perAddressBurst) ?? d.perAddressBurst
        perAddressPerSecond = try c.decodeIfPresent(Double.self, forKey: .perAddressPerSecond) ?? d.perAddressPerSecond
        sessionHours = try c.decodeIfPresent(Int.self, forKey: .sessionHours) ?? d.sessionHours
        maxInFlight = try c.decodeIfPresent(Int.self, forKey: .maxInFlight) ?? d.maxInFlight
        firstRequestTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .firstRequestTimeoutSeconds) ?? d.firstRequestTimeoutSeconds
        idleTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds) ?? d.idleTimeoutSeconds
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections
        policy = try c.decodeIfPresent(QuotaPolicy.self, forKey: .policy) ?? d.policy
        smsSender = try c.decodeIfPresent(String.self, forKey: .smsSender) ?? d.smsSender
        smsFile = try c.decodeIfPresent(String.self, forKey: .smsFile) ?? d.smsFile
        smsWebhookURL = try c.decodeIfPresent(String.self, forKey: .smsWebhookURL)
        reminderHour = try c.decodeIfPresent(Int.self, forKey: .reminderHour) ?? d.reminderHour
    }

    package func validate() throws {
        func fail(_ zh: String, _ en: String) -> NodeError { NodeError(.config, zh: "patients 配置：" + zh, en: "patients config: " + en) }
        guard (0...65535).contains(port) else { throw fail("port 必须在 0 到 65535 之间。", "port must be between 0 and 65535.") }
        guard (1...240).contains(holdMinutes) else { throw fail("hold_minutes 须在 1 到 240 之间。", "hold_minutes must be between 1 and 240.") }
        guard otpTTLSeconds >= 30, otpMaxTries >= 1, otpPerMobileBurst >= 1, otpPerMobileEverySeconds >= 1 else {
            throw fail("验证码设置须为正数（otp_ttl_s 至少 30）。", "one-time code settings must be positive (otp_ttl_s at least 30).")
        }
        guard perAddressBurst >= 1, perAddressPerSecond > 0, sessionHours >= 1, maxInFlight >= 1 else {
            throw fail("限流与会话设置须为正数。", "rate-limit and session settings must be positive.")
        }
        guard (1...3600).contains(firstRequestTimeoutSeconds), (1...3600).contains(idleTimeoutSeconds) else {
            throw fail("first_request_timeout_s 与 idle_timeout_s 须在 1 到 3600 秒之间。", "first_request_timeout_s and idle_timeout_s must be between 1 and 3600 seconds.")
        }
        guard (1...1_000_000).contains(maxConnections) else {
            throw fail("max_connections 须在 1 到 1000000 之间。", "max_connections must be between 1 and 1000000.")
        }
        guard ["file", "webhook"].contains(smsSender) else {
            throw fail("sms_sender 只能是 file 或 webhook。", "sms_sender must be file or webhook.")
        }
        if smsSender == "webhook" {
            guard let u = smsWebhookURL.flatMap(URL.init(string:)), ["http", "https"].contains(u.scheme ?? "") else {
                throw fail("sms_sender 为 webhook 时须给出 http(s) 地址 sms_webhook_url。", "with sms_sender webhook, give an http(s) sms_webhook_url.")
            }
        }
        guard (0...23).contains(reminderHour) else { throw fail("reminder_hour 须在 0 到 23 之间。", "reminder_hour must be between 0 and 23.") }
        for r in policy.rules where r.windowDays < 1 || r.limit < 0 {
            throw fail("policy.rules 中的 window_days 至少为 1，limit 不能为负。", "policy.rules need window_days of at least 1 and a limit that is not negative.")
        }
        for b in policy.bans where b.count < 1 || b.windowDays < 1 || b.banDays < 0 {
            throw fail("policy.bans 中 count、window_days 至少为 1，ban_days 不能为负。", "policy.bans need count and window_days of at least 1 and ban_days not negative.")
        }
    }
}
