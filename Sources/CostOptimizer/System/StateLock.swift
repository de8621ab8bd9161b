import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One daemon per `STATE_DIR`: an exclusive `flock` on `STATE_DIR/lock`, taken without waiting and held until
/// `release()` or deinit (or the process's death: the kernel drops it, so a crash never leaves a stale lock).
///
/// Take it before anything else touches `STATE_DIR` (before `FileStateStore`, which removes leftover temp files) and
/// keep the object alive for the daemon's whole run. A second daemon, or a hand-run `run --once` on the same
/// directory, fails at once with `StateLockError.held`.
///
/// - The file is opened `O_CLOEXEC`, so no child (ssh, openssl) inherits the lock and outlives the daemon holding it.
/// - `flock` locks belong to an open file description: a second `StateLock` on the same directory fails even in the
///   same process.
/// - The file is never removed (removing it would let two processes lock two different files); it holds the
///   holder's pid, for the error message only.
public final class StateLock: Sendable {
    /// The state directory.
    public let directory: String
    /// `directory/lock`.
    public var path: String { directory + "/lock" }
    /// The open descriptor holding the lock; nil once released.
    private let descriptor: Mutex<Int32?>
    /// The directory's identity, registered while held (see `isHeldInThisProcess(directory:)`).
    private let identity: DirectoryIdentity

    /// Takes the lock on `directory/lock`, creating the directory (mode 0700) and the file (mode 0600) if needed.
    /// - Throws: `StateLockError.held` at once when another process, or another `StateLock`, holds it;
    ///   `StateLockError.io` when the directory or file cannot be created or opened.
    public init(directory: String) throws(StateLockError) {
        self.directory = directory
        let path = directory + "/lock"
        do {
            try PrivateDirectory.create(directory)
        } catch {
            throw .io(path: error.path, detail: error.detail)
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .io(path: path, detail: String(cString: strerror(errno))) }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        guard result == 0 else {
            let code = errno
            let holder = StateLock.readPID(fd)
            close(fd)
            if code == EWOULDBLOCK { throw .held(directory: directory, pid: holder) }
            throw .io(path: path, detail: String(cString: strerror(code)))
        }
        guard let identity = DirectoryIdentity(path: directory) else {
            let detail = String(cString: strerror(errno))
            close(fd)
            throw .io(path: path, detail: detail)
        }
        // Private whatever the umask or an older file's mode; then the pid, for a second daemon's message.
        _ = fchmod(fd, 0o600)
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
        self.descriptor = Mutex(fd)
        self.identity = identity
        StateLock.held.withLock { _ = $0.insert(identity) }
    }

    /// True until `release()`.
    public var isHeld: Bool { descriptor.withLock { $0 != nil } }

    /// Drops the lock (closing the file); later calls do nothing.
    public func release() {
        let fd: Int32? = descriptor.withLock { fd in
            defer { fd = nil }
            return fd
        }
        guard let fd else { return }
        StateLock.held.withLock { _ = $0.remove(identity) }
        close(fd)
    }

    deinit { release() }

    /// True when a `StateLock` of this process holds `directory`'s lock (whatever the spelling of the path).
    public static func isHeldInThisProcess(directory: String) -> Bool {
        guard let identity = DirectoryIdentity(path: directory) else { return false }
        return held.withLock { $0.contains(identity) }
    }

    /// The directories locked by this process.
    private static let held = Mutex<Set<DirectoryIdentity>>([])

    /// The pid the holder wrote, when readable.
    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 24)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Int32(text).flatMap { $0 > 0 ? $0 : nil }
    }
}

/// A directory's device and inode: the same directory under any path spelling.
struct DirectoryIdentity: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// `STATE_DIR` is already in use, or its lock file cannot be opened.
public enum StateLockError: Error, Equatable, CustomStringConvertible {
    /// Another process (pid, when it could be read) or another `StateLock` of this one holds the lock.
    case held(directory: String, pid: Int32?)
    /// The directory or the lock file cannot be created or opened.
    case io(path: String, detail: String)

    public var description: String {
        switch self {
        case .held(let directory, let pid):
            "another cost-optimizer\(pid.map { " (pid \($0))" } ?? "") is running with STATE_DIR=\(directory); "
                + "stop it first"
        case .io(let path, let detail):
            "cannot lock \(path) (\(detail)); check STATE_DIR and its permissions"
        }
    }
}

/// Directories the daemon creates for itself.
enum PrivateDirectory {
    /// Creates `path` and any missing parent, each new directory with mode 0700 whatever the umask (`mkdir`, then
    /// `chmod`); existing directories are left as they are.
    /// - Returns: true when `path` itself was created.
    /// - Throws: `PrivateDirectoryError` naming the component that could not be created.
    @discardableResult
    static func create(_ path: String) throws(PrivateDirectoryError) -> Bool {
        guard !path.isEmpty else { throw PrivateDirectoryError(path: path, detail: "the path is empty") }
        var prefix = path.hasPrefix("/") ? "" : "."
        var createdLast = false
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) == 0 {
                guard chmod(prefix, 0o700) == 0 else {
                    throw PrivateDirectoryError(path: prefix, detail: String(cString: strerror(errno)))
                }
                createdLast = true
                continue
            }
            // Whatever mkdir said (EEXIST, or EROFS/EACCES on an existing parent), an existing directory is fine.
            let code = errno
            var info = stat()
            guard stat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw PrivateDirectoryError(
                    path: prefix, detail: code == EEXIST ? "not a directory" : String(cString: strerror(code)))
            }
            createdLast = false
        }
        return createdLast
    }
}

/// A directory could not be created.
struct PrivateDirectoryError: Error {
    var path: String
    var detail: String
}
