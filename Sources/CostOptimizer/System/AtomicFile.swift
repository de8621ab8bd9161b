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
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw AtomicFileError(path: temp, detail: String(cString: strerror(errno))) }
        var failure: AtomicFileError?
        if fchmod(fd, mode) != 0 {
            failure = AtomicFileError(
                path: temp, detail: "cannot set mode \(String(mode, radix: 8)): " + String(cString: strerror(errno)))
        } else {
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written != data.count {
                failure = AtomicFileError(
                    path: temp, detail: written < 0 ? String(cString: strerror(errno)) : "short write")
            } else if fsync(fd) != 0 {
                failure = AtomicFileError(path: temp, detail: String(cString: strerror(errno)))
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
}

/// A file could not be replaced: which path, and the system's reason.
struct AtomicFileError: Error, Equatable {
    var path: String
    var detail: String
}
