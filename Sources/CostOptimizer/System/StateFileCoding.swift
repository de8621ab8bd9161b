import CostOptimizerCore
import Foundation

/// `state.json` written and read one instance record at a time.
///
/// `JSONEncoder` and `JSONDecoder` build a tree of the whole document in memory, tens of times its size: for a fleet
/// of 1,000 instances with an hour of samples each (2.7 MB of JSON) a whole-state encode took 35 MB on top of the
/// daemon, every cycle (docs/performance.md). Here the state without its records is encoded as usual, and each
/// record is encoded on its own and spliced in, written out in pieces (or sliced out of the file's text and decoded
/// on its own), so the peak is a piece of the text plus one record's tree. The file is the same JSON object as
/// before: either reader reads what either writer wrote.
enum StateFileCoding {
    /// The state's JSON: the object `encoder` makes of it, with the `instances` records in key order.
    static func encode(_ state: FleetState, with encoder: JSONEncoder) throws -> Data {
        var data = Data()
        try encode(state, with: encoder) { data.append($0) }
        return data
    }

    /// Hands the state's JSON to `emit` in pieces of about `chunk` bytes, so it is never whole in memory.
    static func encode(
        _ state: FleetState, with encoder: JSONEncoder, chunk: Int = 256 << 10, emit: (Data) throws -> Void
    ) throws {
        var frame = state
        frame.instances = [:]
        let outline = try encoder.encode(frame)
        guard let slot = emptyObject(ofTopLevelKey: "instances", in: outline) else {
            try emit(try encoder.encode(state))
            return
        }
        var buffer = Data(outline[outline.startIndex..<outline.startIndex + slot.lowerBound + 1])
        for (position, entry) in state.instances.sorted(by: { $0.key < $1.key }).enumerated() {
            if position > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(try encoder.encode(entry.key))
            buffer.append(UInt8(ascii: ":"))
            buffer.append(try encoder.encode(entry.value))
            if buffer.count >= chunk {
                try emit(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        buffer.append(outline[(outline.startIndex + slot.upperBound - 1)...])
        try emit(buffer)
    }

    /// Reads a state written by `encode` or by `JSONEncoder` alone.
    /// - Throws: what `decoder` throws for a document that is not a state.
    static func decode(_ data: Data, with decoder: JSONDecoder) throws -> FleetState {
        try data.withUnsafeBytes { bytes throws -> FleetState in
            guard let members = objectMembers(ofTopLevelKey: "instances", in: bytes) else {
                return try decoder.decode(FleetState.self, from: data)
            }
            var outline = Data(bytes[..<members.object.lowerBound])
            outline.append(contentsOf: "{}".utf8)
            outline.append(contentsOf: bytes[members.object.upperBound...])
            var state = try decoder.decode(FleetState.self, from: outline)
            for member in members.entries {
                let key = try decoder.decode(String.self, from: Data(bytes[member.key]))
                state.instances[key] = try decoder.decode(InstanceRecord.self, from: Data(bytes[member.value]))
            }
            return state
        }
    }

    // MARK: - Finding the records in the text

    /// The byte range of `{}` after the top-level key `key` in JSON without whitespace (as `JSONEncoder` writes it).
    static func emptyObject(ofTopLevelKey key: String, in data: Data) -> Range<Int>? {
        data.withUnsafeBytes { emptyObject(ofTopLevelKey: key, in: $0) }
    }

    private static func emptyObject(ofTopLevelKey key: String, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var found: Range<Int>?
        scan(bytes) { depth, keyRange in
            guard depth == 1, bytes[keyRange].elementsEqual(quoted(key)), keyRange.upperBound + 2 < bytes.count,
                bytes[keyRange.upperBound] == UInt8(ascii: ":"), bytes[keyRange.upperBound + 1] == UInt8(ascii: "{"),
                bytes[keyRange.upperBound + 2] == UInt8(ascii: "}")
            else { return true }
            found = (keyRange.upperBound + 1)..<(keyRange.upperBound + 3)
            return false
        }
        return found
    }

    struct Members {
        /// The whole value of the key, braces included.
        var object: Range<Int>
        /// Each member's key (a JSON string, quotes included) and value.
        var entries: [(key: Range<Int>, value: Range<Int>)]
    }

    /// The members of the object that is the value of the top-level key `key`; nil when the document is not laid
    /// out as expected (the caller then decodes it whole).
    static func objectMembers(ofTopLevelKey key: String, in bytes: UnsafeRawBufferPointer) -> Members? {
        var objectStart: Int?
        scan(bytes) { depth, keyRange in
            guard depth == 1, bytes[keyRange].elementsEqual(quoted(key)) else { return true }
            var index = keyRange.upperBound
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
            index += 1
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            if index < bytes.count, bytes[index] == UInt8(ascii: "{") { objectStart = index }
            return false
        }
        guard let start = objectStart else { return nil }
        // Walk the object: each member is a key string, a colon, and a value that ends at depth 0 on ',' or '}'.
        var entries: [(key: Range<Int>, value: Range<Int>)] = []
        var index = start + 1
        func skipSpace() { while index < bytes.count, isSpace(bytes[index]) { index += 1 } }
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { return Members(object: start..<(index + 1), entries: []) }
        while index < bytes.count {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let keyEnd = stringEnd(bytes, from: index) else {
                return nil
            }
            let keyRange = index..<keyEnd
            index = keyEnd
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            skipSpace()
            let valueStart = index
            var depth = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    guard let end = stringEnd(bytes, from: index) else { return nil }
                    index = end
                    continue
                }
                if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") { depth += 1 }
                if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                    if depth == 0 { break }
                    depth -= 1
                }
                if byte == UInt8(ascii: ","), depth == 0 { break }
                index += 1
            }
            guard index < bytes.count else { return nil }
            var valueEnd = index
            while valueEnd > valueStart, isSpace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            guard valueEnd > valueStart else { return nil }
            entries.append((keyRange, valueStart..<valueEnd))
            if bytes[index] == UInt8(ascii: "}") { return Members(object: start..<(index + 1), entries: entries) }
            index += 1
        }
        return nil
    }

    /// Calls `visit(depth, keyRange)` for each object key (quotes included) until it returns false; `depth` is 1
    /// for the keys of the top-level object.
    private static func scan(_ bytes: UnsafeRawBufferPointer, _ visit: (Int, Range<Int>) -> Bool) {
        var depth = 0
        var index = 0
        var expectKey = false
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                guard let end = stringEnd(bytes, from: index) else { return }
                if expectKey {
                    var next = end
                    while next < bytes.count, isSpace(bytes[next]) { next += 1 }
                    if next < bytes.count, bytes[next] == UInt8(ascii: ":"), !visit(depth, index..<end) { return }
                }
                expectKey = false
                index = end
                continue
            case UInt8(ascii: "{"):
                depth += 1
                expectKey = true
            case UInt8(ascii: "["):
                depth += 1
                expectKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                expectKey = false
            case UInt8(ascii: ","):
                // A comma inside an object is followed by a key; inside an array, by a value (not a key: no colon).
                expectKey = true
            default:
                break
            }
            index += 1
        }
    }

    /// The index just past the closing quote of the string that opens at `start`; nil when it never closes.
    private static func stringEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var index = start + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return nil
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private static func quoted(_ key: String) -> [UInt8] { Array("\"\(key)\"".utf8) }
}
