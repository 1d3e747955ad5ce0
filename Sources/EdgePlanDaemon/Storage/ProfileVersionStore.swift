import EdgePlanCore
import Foundation

/// Recalibrated profiles in the state directory: `versions/<version>/` (complete profile directories,
/// kept as history) and `current`, a symlink to the one in use. A version directory is written under a
/// temporary name, every file fsynced, then renamed into place; `current` is replaced by renaming a new
/// symlink over it. A crash at any point leaves the previous `current` intact: a visible version directory is
/// always complete (pruning first renames it out of sight), leftovers of an interrupted write or prune are removed
/// at start, and a `current` that no longer loads falls back to the newest complete version of the same base.
public struct ProfileVersionStore: Sendable {
    public let directory: String
    /// Versions kept; older ones are deleted (never the current one).
    public let keep: Int

    public init(directory: String, keep: Int = 20) throws {
        self.directory = directory
        self.keep = keep
        do {
            try FileManager.default.createDirectory(atPath: "\(directory)/versions", withIntermediateDirectories: true)
        } catch {
            throw EdgePlanError(.io, "cannot create the profile history: \(error)", file: directory)
        }
        removeLeftovers()
    }

    /// Temporary versions, versions half-way through pruning and temporary links left by a crash.
    func removeLeftovers() {
        for (folder, prefixes) in [("\(directory)/versions", [".tmp-", ".trash-"]), (directory, [".current-"])] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            where prefixes.contains(where: name.hasPrefix) {
                try? FileManager.default.removeItem(atPath: "\(folder)/\(name)")
            }
        }
    }

    /// Writes `profile` as a new version derived from the configured profile `base` and makes it current.
    @discardableResult
    public func write(_ profile: ProfileSet, base: String) throws -> String {
        let final = "\(directory)/versions/\(profile.version)"
        if !FileManager.default.fileExists(atPath: final) {
            let temporary = "\(directory)/versions/.tmp-\(profile.version)-\(getpid())"
            try? FileManager.default.removeItem(atPath: temporary)
            for sub in ["models", "accuracy"] {
                try FileManager.default.createDirectory(
                    atPath: "\(temporary)/\(sub)",
                    withIntermediateDirectories: true
                )
            }
            for file in profile.encodedFiles { try AtomicFile.write(file.text, to: "\(temporary)/\(file.path)") }
            try AtomicFile.write(base + "\n", to: "\(temporary)/base-version")
            guard rename(temporary, final) == 0 else {
                throw EdgePlanError(.io, "rename failed: \(String(cString: strerror(errno)))", file: final)
            }
            Self.fsyncDirectory("\(directory)/versions")
        }
        let link = "\(directory)/current"
        let temporaryLink = "\(directory)/.current-\(getpid())"
        unlink(temporaryLink)
        guard symlink("versions/\(profile.version)", temporaryLink) == 0, rename(temporaryLink, link) == 0 else {
            throw EdgePlanError(
                .io,
                "cannot point current at \(profile.version): \(String(cString: strerror(errno)))",
                file: link
            )
        }
        Self.fsyncDirectory(directory)
        prune(except: profile.version)
        return final
    }

    /// The current recalibrated profile, when there is one and it was derived from the configured profile `base`.
    /// If `current` does not load, the newest version of the same base that does is used, and `current` repointed.
    public func current(base: String) throws -> ProfileSet? {
        let link = "\(directory)/current"
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        if let profile = load("\(directory)/\(target)", base: base) { return profile }
        for name in versions().reversed() {
            guard let profile = load("\(directory)/versions/\(name)", base: base) else { continue }
            let temporaryLink = "\(directory)/.current-\(getpid())"
            unlink(temporaryLink)
            if symlink("versions/\(name)", temporaryLink) == 0, rename(temporaryLink, link) == 0 {
                Self.fsyncDirectory(directory)
            }
            return profile
        }
        return nil
    }

    /// A version directory's profile if it derives from `base` and loads completely.
    private func load(_ path: String, base: String) -> ProfileSet? {
        guard
            (try? String(contentsOfFile: "\(path)/base-version", encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines
            ) == base
        else { return nil }
        return try? ProfileStore.load(path)
    }

    /// Version directories, oldest first.
    public func versions() -> [String] {
        let base = "\(directory)/versions"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { !$0.hasPrefix(".") }
        return names.sorted {
            let a =
                (try? FileManager.default.attributesOfItem(atPath: "\(base)/\($0)")[.modificationDate] as? Date)
                ?? .distantPast
            let b =
                (try? FileManager.default.attributesOfItem(atPath: "\(base)/\($1)")[.modificationDate] as? Date)
                ?? .distantPast
            return a < b
        }
    }

    private func prune(except current: String) {
        let all = versions()
        guard all.count > keep else { return }
        for name in all.prefix(all.count - keep) where name != current {
            // Out of sight first (one atomic rename), then deleted: a crash never leaves half a version visible.
            let trash = "\(directory)/versions/.trash-\(name)-\(getpid())"
            guard rename("\(directory)/versions/\(name)", trash) == 0 else { continue }
            try? FileManager.default.removeItem(atPath: trash)
        }
        Self.fsyncDirectory("\(directory)/versions")
    }

    private static func fsyncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
