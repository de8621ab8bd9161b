import CostOptimizerCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `STATE_DIR/state.json` (temp file, fsync, rename, fsync of the directory; mode 0600) and
/// `STATE_DIR/actions.jsonl` (one `write` per record, then fsync).
public struct FileStateStore: StateStore {
    public let directory: String
    let logger: Logger

    public var statePath: String { directory + "/state.json" }
    public var journalPath: String { directory + "/actions.jsonl" }

    /// Creates the directory (0700) if needed and removes temp files a crash left behind.
    public init(directory: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StateStoreError.io(path: directory, detail: "cannot create the directory")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        // Temp files a crash left behind: a half-written state, or a GCE key copy from an interrupted JWT signature.
        for name in names where name.hasPrefix(".state.json.tmp") || name.hasPrefix("gce-jwt.") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    public func load() throws -> FleetState? {
        guard let data = FileManager.default.contents(atPath: statePath) else { return nil }
        do {
            let state = try FileStateStore.decoder.decode(FleetState.self, from: data)
            guard state.schemaVersion == FleetState.currentSchemaVersion else {
                throw StateStoreError.io(path: statePath, detail: "schema version \(state.schemaVersion)")
            }
            return state
        } catch {
            let aside = statePath + ".corrupt-\(Int(Date().timeIntervalSince1970))"
            try? FileManager.default.moveItem(atPath: statePath, toPath: aside)
            logger.warning("State file unreadable, moved aside, starting fresh: \(aside)")
            return nil
        }
    }

    public func save(_ state: FleetState) throws {
        let data: Data
        do { data = try FileStateStore.encoder.encode(state) } catch {
            throw StateStoreError.io(path: statePath, detail: "cannot encode the state")
        }
        let temp = directory + "/.state.json.tmp-\(getpid())"
        try writeDurably(data, to: temp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        guard rename(temp, statePath) == 0 else {
            let detail = String(cString: strerror(errno))
            unlink(temp)
            throw StateStoreError.io(path: statePath, detail: detail)
        }
        syncDirectory()
    }

    public func append(_ record: JournalRecord) throws {
        var data: Data
        do { data = try FileStateStore.lineEncoder.encode(record) } catch {
            throw StateStoreError.io(path: journalPath, detail: "cannot encode the record")
        }
        data.append(UInt8(ascii: "\n"))
        try writeDurably(data, to: journalPath, flags: O_WRONLY | O_CREAT | O_APPEND)
    }

    /// Reads every journal record (for tests and `status`); unreadable lines are skipped.
    public func journal() -> [JournalRecord] {
        guard let data = FileManager.default.contents(atPath: journalPath) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? FileStateStore.decoder.decode(JournalRecord.self, from: Data($0))
        }
    }

    private func writeDurably(_ data: Data, to path: String, flags: Int32) throws {
        let fd = open(path, flags | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateStoreError.io(path: path, detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else {
            throw StateStoreError.io(path: path, detail: written < 0 ? String(cString: strerror(errno)) : "short write")
        }
        guard fsync(fd) == 0 else { throw StateStoreError.io(path: path, detail: String(cString: strerror(errno))) }
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.timeIntervalSince1970)
        }
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let lineEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            if let seconds = try? container.decode(Double.self) { return Date(timeIntervalSince1970: seconds) }
            let text = try container.decode(String.self)
            guard let date = try? Date(text, strategy: .iso8601) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a date")
            }
            return date
        }
        return decoder
    }()
}
