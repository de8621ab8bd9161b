import CostOptimizerCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `STATE_DIR/state.json` (temp file, fsync, rename, fsync of the directory) and `STATE_DIR/actions.jsonl` (one
/// `write` per record, then fsync). Both files are mode 0600 whatever the umask (opened with mode 0600, then
/// `fchmod`); a directory it creates is mode 0700.
public struct FileStateStore: StateStore {
    public let directory: String
    let logger: Logger
    /// How far `unresolvedIntents()` has read the journal, shared by the copies of this store.
    private let journalReader = JournalReader()

    public var statePath: String { directory + "/state.json" }
    public var journalPath: String { directory + "/actions.jsonl" }

    /// Names of the temp files a crash can leave behind in `STATE_DIR`: a half-written state, or a GCE key copy from
    /// an interrupted JWT signature.
    static let staleFilePrefixes = [".state.json.tmp", "gce-jwt."]

    /// Creates the directory (0700, and any missing parent) if needed and removes temp files a crash left behind.
    ///
    /// The temp files are removed only by the process that holds, or can take, the `StateLock` of the directory:
    /// `cost-optimizer status` run beside the daemon must not delete the daemon's temp file between its write and
    /// its rename. Take the `StateLock` first, then create the store.
    /// - Throws: `StateStoreError.io` when the directory cannot be created.
    public init(directory: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        do {
            try PrivateDirectory.create(directory)
        } catch {
            throw StateStoreError.io(path: error.path, detail: "cannot create the directory: \(error.detail)")
        }
        var info = stat()
        if stat(directory, &info) == 0, info.st_mode & 0o077 != 0 {
            logger.warning(
                "STATE_DIR=\(directory) is open to other users (mode \(String(info.st_mode & 0o777, radix: 8))); "
                    + "its files stay 0600, but run chmod 700 on it")
        }
        if StateLock.isHeldInThisProcess(directory: directory) {
            removeStaleFiles()
        } else if let probe = try? StateLock(directory: directory) {
            removeStaleFiles()
            probe.release()
        } else {
            logger.debug("Leftover temp files in \(directory) not checked: another process holds its lock")
        }
    }

    private func removeStaleFiles() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where FileStateStore.staleFilePrefixes.contains(where: name.hasPrefix) {
            do {
                try FileManager.default.removeItem(atPath: directory + "/" + name)
                logger.info("Removed a temp file left by an interrupted run: \(directory)/\(name)")
            } catch {
                logger.warning("Cannot remove a temp file left by an interrupted run: \(directory)/\(name): \(error)")
            }
        }
    }

    public func load() throws -> FleetState? {
        let state = readState()
        // The file's text and the decoding are gone: their pages go back to the system.
        MallocTuning.releaseFreePages()
        return state
    }

    private func readState() -> FleetState? {
        guard let data = FileManager.default.contents(atPath: statePath) else { return nil }
        do {
            let state = try StateFileCoding.decode(data, with: FileStateStore.decoder)
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
        let temp = directory + "/.state.json.tmp-\(getpid())"
        do {
            // Written in pieces as it is encoded: a large fleet's state is never whole in memory.
            try AtomicFile.replace(statePath, mode: 0o600, temp: temp) { write in
                try StateFileCoding.encode(state, with: FileStateStore.encoder, emit: write)
            }
        } catch {
            throw StateStoreError.io(path: error.path, detail: error.detail)
        }
        // The end of a cycle: what it freed goes back to the system.
        MallocTuning.releaseFreePages()
    }

    /// Appends `record` as one line with one `write`, then fsyncs. A line left without its newline by a crash is
    /// first closed with one, so that it stays a torn line of its own instead of spoiling this record.
    public func append(_ record: JournalRecord) throws {
        var data: Data
        do { data = try FileStateStore.lineEncoder.encode(record) } catch {
            throw StateStoreError.io(path: journalPath, detail: "cannot encode the record")
        }
        data.append(UInt8(ascii: "\n"))
        try writeDurably(data, to: journalPath, flags: O_RDWR | O_CREAT | O_APPEND)
    }

    /// The journal's intents with no later record of the same `action_id` (see `StateStore.unresolvedIntents()`).
    ///
    /// The journal is append-only, and the daemon asks every cycle: the first call reads it all, later calls read
    /// only the whole lines appended since (a 100,000-line journal takes about a second to read; see
    /// docs/performance.md). A journal that was replaced, truncated or rewritten before the last line read is read
    /// again from the start.
    ///
    /// A line that is not a whole record is a write a crash cut short: skipped, with a warning once it is followed by
    /// another line (a last line without its newline is read again by the next call). A whole JSON object that claims to
    /// be an intent (`"result":"intent"` with an `action_id`) but does not decode throws instead, on every call until
    /// it is mended: an unknown outcome must not be ignored.
    public func unresolvedIntents() throws -> [JournalRecord] {
        try journalReader.state.withLock { reader throws -> [JournalRecord] in
            let fd = open(journalPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ENOENT {
                    reader = JournalReader.State()
                    return []
                }
                throw StateStoreError.unreadable(path: journalPath, detail: String(cString: strerror(errno)))
            }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                throw StateStoreError.unreadable(path: journalPath, detail: String(cString: strerror(errno)))
            }
            if !reader.continues(fd: fd, info: info) {
                reader = JournalReader.State(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
            }
            var pending: [UInt8] = []
            var position = reader.offset
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(position)) }
                if count == 0 { break }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StateStoreError.unreadable(path: journalPath, detail: String(cString: strerror(errno)))
                }
                position += count
                pending += buffer[0..<count]
                var lineStart = 0
                while let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                    try consume(pending[lineStart..<newline], number: reader.lines + 1, into: &reader.open)
                    reader.lines += 1
                    reader.offset += newline - lineStart + 1
                    lineStart = newline + 1
                }
                pending.removeFirst(lineStart)
            }
            // A last line without its newline is read but not taken: a whole record there (a crash may have kept
            // all but the newline) counts now, and the line is taken once the next append has closed it.
            var open = reader.open
            if !pending.isEmpty {
                try consume(pending[...], number: reader.lines + 1, into: &open, complete: false)
            }
            return open.intents
        }
    }

    /// Takes one journal line (without its newline); `complete` is false for a last line without its newline, which
    /// is skipped silently when it is not a record.
    private func consume(
        _ line: ArraySlice<UInt8>, number: Int, into open: inout OpenIntents, complete: Bool = true
    ) throws {
        guard !line.isEmpty else { return }
        let bytes = Data(line)
        if let record = try? FileStateStore.decoder.decode(JournalRecord.self, from: bytes) {
            open.add(record)
        } else if let link = try? FileStateStore.decoder.decode(IntentLink.self, from: bytes),
            link.result == JournalResult.intent, link.actionID != nil
        {
            throw StateStoreError.undecodableIntent(path: journalPath, line: number)
        } else if complete {
            logger.warning("Journal line \(number) of \(journalPath) is not a record (a write cut short?): skipped")
        }
    }

    /// The two fields that make a journal line an intent.
    private struct IntentLink: Decodable {
        var result: String?
        var actionID: String?

        enum CodingKeys: String, CodingKey {
            case result
            case actionID = "action_id"
        }
    }

    /// Reads every journal record (for tests and `status`); unreadable lines are skipped.
    public func journal() -> [JournalRecord] {
        guard let data = FileManager.default.contents(atPath: journalPath) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? FileStateStore.decoder.decode(JournalRecord.self, from: Data($0))
        }
    }

    /// Opens `path` with mode 0600 (`O_CLOEXEC | O_NOFOLLOW`), forces 0600 with `fchmod` (an older file, an odd
    /// umask), writes `data` with one `write`, and fsyncs; the directory is fsynced too when the file was new. With
    /// `O_APPEND`, a previous line left without its newline is closed first.
    private func writeDurably(_ data: Data, to path: String, flags: Int32) throws {
        let fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StateStoreError.io(path: path, detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else {
            throw StateStoreError.io(path: path, detail: "cannot set mode 0600: " + String(cString: strerror(errno)))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw StateStoreError.io(path: path, detail: String(cString: strerror(errno)))
        }
        var bytes = data
        if flags & O_APPEND != 0, info.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, info.st_size - 1) == 1, last != UInt8(ascii: "\n") {
                bytes.insert(UInt8(ascii: "\n"), at: bytes.startIndex)
            }
        }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw StateStoreError.io(path: path, detail: written < 0 ? String(cString: strerror(errno)) : "short write")
        }
        guard fsync(fd) == 0 else { throw StateStoreError.io(path: path, detail: String(cString: strerror(errno))) }
        if info.st_size == 0 && flags & O_APPEND != 0 { syncDirectory() }
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

/// What `FileStateStore.unresolvedIntents()` has read of the journal, so the next call reads only what was appended.
final class JournalReader: Sendable {
    struct State {
        /// The journal file read (a replaced file is read from the start).
        var device: UInt64 = 0
        var inode: UInt64 = 0
        /// Bytes of whole lines read, and how many lines they are.
        var offset = 0
        var lines = 0
        var open = OpenIntents()

        /// True when the file is the one read so far and still holds what was read: same file, not shorter, and a
        /// newline right before the offset (a rewrite in place rarely keeps one there).
        func continues(fd: Int32, info: stat) -> Bool {
            guard UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode, Int(info.st_size) >= offset else {
                return false
            }
            guard offset > 0 else { return true }
            var last: UInt8 = 0
            return pread(fd, &last, 1, off_t(offset - 1)) == 1 && last == UInt8(ascii: "\n")
        }
    }

    let state = Mutex(State())
}
