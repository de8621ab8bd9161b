import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Two settings of glibc's allocator that keep the daemon's resident memory near what it holds
/// (docs/performance.md: at 1,000 instances they take the peak from about 53 to about 47 MiB).
///
/// - One arena: glibc gives each thread that allocates an arena of its own (up to eight per core), and each ssh
///   call is watched by a thread of its own, so freed memory ends up scattered over many arenas that each keep it.
///   The daemon's threads mostly wait (on a child, a socket or a timer), so sharing one arena costs no measurable
///   CPU.
/// - Trimming: a cycle frees most of what it allocated, but glibc keeps freed pages; `malloc_trim` hands them back.
///
/// `mallopt` and `malloc_trim` are not in Swift's Glibc module: they are looked up once with `dlsym`; where they do
/// not exist (another C library), nothing is done.
public enum MallocTuning {
    private typealias Trim = @convention(c) (Int) -> Int32
    private typealias Option = @convention(c) (Int32, Int32) -> Int32

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(dlopen(nil, RTLD_NOW), name)
    }

    private static let trim: Trim? = symbol("malloc_trim").map { unsafeBitCast($0, to: Trim.self) }

    /// glibc's `M_ARENA_MAX`.
    private static let arenaMax: Int32 = -8

    /// One malloc arena for the whole process; call first thing, before other threads allocate. An explicit
    /// `MALLOC_ARENA_MAX` in the environment wins.
    public static func useOneArena() {
        guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil,
            let mallopt = symbol("mallopt").map({ unsafeBitCast($0, to: Option.self) })
        else { return }
        _ = mallopt(arenaMax, 1)
    }

    /// Returns the free pages of the arenas to the system; a few milliseconds.
    static func releaseFreePages() {
        _ = trim?(0)
    }
}
