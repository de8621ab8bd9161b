import Foundation

/// A stand-in for the `ssh` binary, for `demo` and the end-to-end tests: a shell script that ignores ssh's options
/// and prints the answer file of the destination (`host:port`, else the port alone), as a remote `nvidia-smi` would.
/// No answer file means ssh's own failure (status 255). The daemon runs it through the real `ProcessCommandRunner`.
public struct FakeSSHProgram: Sendable {
    /// The directory holding the script and the answers.
    public let directory: String
    /// The script's path: set `SSH_COMMAND` to it.
    public var path: String { directory + "/fake-ssh" }

    /// Writes the script into `directory` (created if needed).
    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory + "/answers", withIntermediateDirectories: true)
        let script = """
            #!/bin/sh
            # cost-optimizer: a fake ssh. It ignores the options and answers with the file of host:port, else port.
            # Every argv is appended to argv.log, one line per call, so tests can inspect what the daemon passed.
            printf '%s\\n' "$*" >> '\(directory)/argv.log'
            port=""
            host=""
            while [ $# -gt 0 ]; do
              case "$1" in
                -p) port="$2"; shift 2 ;;
                --) host="${2#*@}"; break ;;
                *) shift ;;
              esac
            done
            answer='\(directory)/answers/'"$host:$port"
            [ -f "$answer" ] || answer='\(directory)/answers/'"$port"
            if [ ! -f "$answer" ]; then
              echo "ssh: connect to host 127.0.0.1 port $port: Connection refused" >&2
              exit 255
            fi
            cat "$answer"

            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
    }

    /// Every argv the script was called with, one line per call.
    public var argvLog: String {
        (try? String(contentsOfFile: directory + "/argv.log", encoding: .utf8)) ?? ""
    }

    /// Sets what the instance behind `port` (on `host`, or on any host) answers; nil makes it unreachable.
    public func answer(port: Int, host: String? = nil, with text: String?) {
        let file = "\(directory)/answers/\(host.map { "\($0):" } ?? "")\(port)"
        if let text {
            try? text.write(toFile: file, atomically: true, encoding: .utf8)
        } else {
            try? FileManager.default.removeItem(atPath: file)
        }
    }
}
