import Logging

/// A standard-error log handler that formats metadata only when it writes a line.
/// `StreamLogHandler` formats its metadata again on every change, and Hummingbird sets a request id
/// on every request's logger, so at a release rush that formatting costs CPU on every request,
/// almost all of it for lines below the log level that are never written.
struct LazyMetadataLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level, provider: Logger.MetadataProvider?) {
        stream = StreamLogHandler.standardError(label: label, metadataProvider: provider)
        stream.logLevel = level
    }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        event.metadata = merged.isEmpty ? nil : merged
        stream.log(event: event)
    }
}
