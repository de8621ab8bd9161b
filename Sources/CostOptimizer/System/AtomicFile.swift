import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Replaces a whole file atomically: a temp file in the same directory (`O_EXCL | O_NOFOLLOW`, its mode set with
/// `fchmod` whatever the umask), one `write`, fsync, `rename` over the target, fsync of the directory. A reader sees
/// the old file or the new one, never a mix, and a crash leaves at most the temp file behind.
enum AtomicFile {
    /// Writes `data` to `path` through the temp file `temp` (same directory), with `mode`.
    /// - Throws: `AtomicFileError` naming the path that failed and the system's reason; the temp file is removed.
    static func replace(_ path: String, with data: Data, mode: mode_t, temp: String) throws(AtomicFileError) {
        try replace(path, mode: mode, temp: temp) { write in try write(data) }
    }

    /// Writes what `produce` hands to its `write` function, piece by piece (a large fleet's state is never whole in
    /// memory), to `path` through the temp file `temp` (same directory), with `mode`.
    /// - Throws: `AtomicFileError` naming the path that failed and the system's reason (an error thrown by `produce`
    ///   itself names `path`, "cannot encode"); the temp file is removed.
    static func replace(
        _ path: String, mode: mode_t, temp: String, produce: (_ write: (Data) throws -> Void) throws -> Void
    ) throws(AtomicFileError) {
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw AtomicFileError(path: temp, detail: String(cString: strerror(errno))) }
        var failure: AtomicFileError?
        if fchmod(fd, mode) != 0 {
            failure = AtomicFileError(
                path: temp, detail: "cannot set mode \(String(mode, radix: 8)): " + String(cString: strerror(errno)))
        } else {
            do {
                try produce { data in try writeAll(data, to: fd, path: temp) }
                if fsync(fd) != 0 { failure = AtomicFileError(path: temp, detail: String(cString: strerror(errno))) }
            } catch let error as AtomicFileError {
                failure = error
            } catch {
                failure = AtomicFileError(path: path, detail: "cannot encode: \(error)")
            }
        }
        close(fd)
        if let failure {
            unlink(temp)
            throw failure
        }
        guard rename(temp, path) == 0 else {
            let detail = String(cString: strerror(errno))
            unlink(temp)
            throw AtomicFileError(path: path, detail: detail)
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// Writes all of `data`, however many `write` calls it takes.
    private static func writeAll(_ data: Data, to fd: Int32, path: String) throws(AtomicFileError) {
        var failure: AtomicFileError?
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else {
                    failure = AtomicFileError(
                        path: path, detail: written < 0 ? String(cString: strerror(errno)) : "short write")
                    return
                }
                offset += written
            }
        }
        if let failure { throw failure }
    }
}

/// A file could not be replaced: which path, and the system's reason.
struct AtomicFileError: Error, Equatable {
    var path: String
    var detail: String
}
