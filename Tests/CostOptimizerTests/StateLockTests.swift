import CostOptimizer
import CostOptimizerCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One daemon per `STATE_DIR` (safety.md §3.5, §8 item 17).
@Suite("State directory lock")
struct StateLockTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("co-lock-\(UUID().uuidString)").path
    let runner = ProcessCommandRunner()

    /// `flock -n <file> true` as a child: 0 when it got the lock, 1 when the lock is held.
    func childCanLock(_ file: String) async throws -> Bool {
        let result = try await runner.run(
            Command(executable: "flock", arguments: ["-n", file, "true"], environment: ["PATH": "/usr/bin:/bin"],
                    timeout: 10))
        #expect(result.status == 0 || result.status == 1, "flock -n exited \(result.status)")
        return result.status == 0
    }

    @Test("a second acquisition fails at once, in the same process too, with one clear line")
    func second() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try StateLock(directory: directory)
        #expect(first.isHeld)
        #expect(first.path == directory + "/lock")
        let started = Date()
        #expect(throws: StateLockError.held(directory: directory, pid: getpid())) {
            try StateLock(directory: directory)
        }
        #expect(Date().timeIntervalSince(started) < 1)
        let message = StateLockError.held(directory: directory, pid: 123).description
        #expect(message == "another cost-optimizer (pid 123) is running with STATE_DIR=\(directory); stop it first")
        #expect(
            StateLockError.held(directory: "/var/lib/cost-optimizer", pid: nil).description
                == "another cost-optimizer is running with STATE_DIR=/var/lib/cost-optimizer; stop it first")
        // The same directory under another spelling is the same lock.
        #expect(throws: StateLockError.self) { try StateLock(directory: directory + "/./") }
        #expect(first.isHeld, "a failed attempt must not release the holder's lock")
    }

    @Test("release, or dropping the object, lets the next one acquire")
    func releaseThenAcquire() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try StateLock(directory: directory)
        #expect(StateLock.isHeldInThisProcess(directory: directory))
        first.release()
        first.release()  // idempotent
        #expect(!first.isHeld)
        #expect(!StateLock.isHeldInThisProcess(directory: directory))
        do {
            let second = try StateLock(directory: directory)
            #expect(second.isHeld)
        }  // deinit releases
        let third = try StateLock(directory: directory)
        #expect(third.isHeld)
        // The file stays: removing it would let two processes lock two different files.
        third.release()
        #expect(FileManager.default.fileExists(atPath: directory + "/lock"))
    }

    @Test("the lock file is 0600 (even when an older one was not) and holds the holder's pid; the directory is 0700")
    func modes() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let nested = directory + "/a/b"
        let lock = try StateLock(directory: nested)
        #expect(StateFileModes.mode(nested + "/lock") == 0o600)
        #expect(StateFileModes.mode(nested) == 0o700)
        #expect(StateFileModes.mode(directory + "/a") == 0o700)
        #expect(try String(contentsOfFile: nested + "/lock", encoding: .utf8) == "\(getpid())\n")
        lock.release()

        chmod(nested + "/lock", 0o644)
        let again = try StateLock(directory: nested)
        #expect(StateFileModes.mode(nested + "/lock") == 0o600)
        again.release()
    }

    @Test("the descriptor is close-on-exec: no child inherits the lock")
    func closeOnExec() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lock = try StateLock(directory: directory)
        defer { lock.release() }
        let target = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        var found: [Int32] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let fd = Int32(name),
                let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name),
                link == target + "/lock"
            else { continue }
            found.append(fd)
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        }
        #expect(found.count == 1)
    }

    @Test("a child process cannot take the lock while it is held, and can once it is released")
    func childProcess() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lock = try StateLock(directory: directory)
        #expect(try await !childCanLock(lock.path))
        lock.release()
        #expect(try await childCanLock(lock.path))
    }

    @Test("held by another process: acquisition fails naming that process")
    func heldByAnotherProcess() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/lock"
        // The child writes its pid, then holds the lock until cancelled (flock -o: the lock is not passed to sh).
        let holder = Task {
            try await runner.run(
                Command(
                    executable: "flock", arguments: ["-o", path, "sh", "-c", "echo $$ > \(path); exec sleep 20"],
                    environment: ["PATH": "/usr/bin:/bin"], timeout: 25))
        }
        defer { holder.cancel() }
        var outcome: StateLockError?
        for _ in 0..<200 {
            do {
                try StateLock(directory: directory).release()
            } catch {
                // Until the child has written its pid, the file still holds ours from a previous loop: keep waiting.
                if case .held(_, let pid?) = error, pid != getpid() {
                    outcome = error
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        let error = try #require(outcome, "the child never held the lock")
        guard case .held(let lockedDirectory, let pid) = error else { return }
        #expect(lockedDirectory == directory)
        #expect(pid.map { kill($0, 0) == 0 } == true)  // names the live holder, not us
        holder.cancel()
        _ = try? await holder.value
    }
}

/// File modes, and running code under another umask without touching the rest of the test process.
enum StateFileModes {
    static func mode(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o7777)
    }

    /// `unshare(2)`, which Glibc's Swift module does not export (it is a `_GNU_SOURCE` declaration).
    private static let unshare: (@convention(c) (Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
    }()
    /// `CLONE_FS` of `<sched.h>`: the umask, root and working directory.
    private static let cloneFS: Int32 = 0x0000_0200

    /// Runs `body` on a thread of its own whose umask is `mask`: the thread first unshares its file-system
    /// attributes (`unshare(CLONE_FS)`), so the process's umask and every other test stay as they were. The caller
    /// awaits a continuation: no thread of the cooperative pool waits.
    static func withUmask<T: Sendable>(_ mask: mode_t, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                guard let unshare = Self.unshare, unshare(Self.cloneFS) == 0 else {
                    continuation.resume(throwing: POSIXError(.init(rawValue: errno) ?? .EPERM))
                    return
                }
                umask(mask)
                continuation.resume(with: Result { try body() })
            }.start()
        }
    }
}
