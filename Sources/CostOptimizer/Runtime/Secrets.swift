import CostOptimizerCore
import Foundation

/// Resolves each secret variable from, in order: `$CREDENTIALS_DIRECTORY/<name in lower case>` (systemd
/// `LoadCredential=`), the file named by `<NAME>_FILE`, or `<NAME>` itself. The first source found wins.
public enum Secrets {
    /// The variables that hold secrets.
    public static let names = [
        "VAST_API_KEY", "WEBHOOK_URL", "TENSORDOCK_API_KEY", "TENSORDOCK_API_TOKEN", "TENSORDOCK_BEARER_TOKEN",
        "GCP_ACCESS_TOKEN",
    ]

    /// The environment with every secret variable replaced by its resolved value.
    /// - Throws: `ConfigError` naming the file (never its content) when a named file is unreadable or empty.
    public static func resolve(_ environment: [String: String]) throws(ConfigError) -> [String: String] {
        var resolved = environment
        for name in names {
            if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
                let path = directory + "/" + name.lowercased()
                if FileManager.default.fileExists(atPath: path) {
                    resolved[name] = try read(path, variable: "CREDENTIALS_DIRECTORY")
                    continue
                }
            }
            if let path = environment[name + "_FILE"], !path.isEmpty {
                resolved[name] = try read(path, variable: name + "_FILE")
            }
        }
        return resolved
    }

    private static func read(_ path: String, variable: String) throws(ConfigError) -> String {
        guard let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)?.trimmed, !text.isEmpty
        else {
            throw ConfigError.invalid(variable: variable, value: path, expected: "a readable, non-empty file")
        }
        return text
    }
}
