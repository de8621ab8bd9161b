import Foundation

#if canImport(Glibc)
import Glibc
#endif

import CostOptimizer

/// A throwaway OpenSSH server on loopback: the pieces the real-ssh tests and `bin/bench` share. A directory with fresh
/// host and client keys, a config that lets in only that client key and puts the directory's `bin` first on the
/// remote `PATH` (where a fake `nvidia-smi` goes), a free port, and the wait for sshd's pid file. Starting and
/// stopping sshd stays with the caller: the tests run `sshd -D` as a child, the bench lets it detach.
public enum LocalSSHD {
    /// Debian's `openssh-server` and `openssh-client` programs.
    public static let sshd = "/usr/sbin/sshd"
    public static let ssh = "/usr/bin/ssh"
    public static let keygen = "/usr/bin/ssh-keygen"

    /// Why a local sshd cannot run here (a program missing), or nil.
    public static func missing() -> String? {
        for path in [sshd, ssh, keygen] where access(path, X_OK) != 0 {
            return "\(path) is missing (apt-get install -y openssh-server openssh-client)"
        }
        return nil
    }

    /// The current user, whom the client logs in as.
    public static var userName: String {
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return "root" }
        return String(cString: name)
    }

    /// Makes `directory` (mode 0755, with an empty `bin`), `host_key` and `client_key` in it, and `authorized_keys`
    /// holding the client key; as root also `/run/sshd`, without which sshd refuses to start.
    public static func prepare(directory: String) async throws {
        let files = FileManager.default
        try files.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
        try files.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        if getuid() == 0 {
            try files.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        }
        for key in ["host_key", "client_key"] {
            try await generateKey(directory + "/" + key)
        }
        try files.copyItem(atPath: directory + "/client_key.pub", toPath: directory + "/authorized_keys")
    }

    /// A new ed25519 key without a passphrase at `path` (and `path.pub`).
    public static func generateKey(_ path: String) async throws {
        let result = try await ProcessCommandRunner().run(
            Command(
                executable: keygen, arguments: ["-q", "-t", "ed25519", "-N", "", "-f", path],
                environment: ["PATH": "/usr/bin:/bin"]))
        guard result.status == 0 else {
            throw LocalSSHDError("ssh-keygen failed: \(String(decoding: result.stderr, as: UTF8.self))")
        }
    }

    /// Writes `directory/sshd_config` for `port`, with `extra` lines appended (e.g. `MaxStartups` for many
    /// connections at once), removes a stale pid file, and returns the config's path.
    public static func writeConfig(directory: String, port: Int, extra: [String] = []) throws -> String {
        let lines = [
            "Port \(port)",
            "ListenAddress 127.0.0.1",
            "HostKey \(directory)/host_key",
            "PidFile \(directory)/sshd.pid",
            "AuthorizedKeysFile \(directory)/authorized_keys",
            "UsePAM no",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "LogLevel INFO",
            "SetEnv PATH=\(directory)/bin:/usr/bin:/bin",
        ] + extra
        let path = directory + "/sshd_config"
        try? FileManager.default.removeItem(atPath: directory + "/sshd.pid")
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// sshd writes its pid file once it listens: its pid, or nil when it did not come within 10 s.
    public static func waitForPidFile(_ path: String) async -> pid_t? {
        for _ in 0..<1000 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return pid
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// A loopback TCP port that was free a moment ago.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalSSHDError("socket failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw LocalSSHDError("bind to 127.0.0.1 failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A local sshd could not be set up; the sentence says which step failed.
public struct LocalSSHDError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
