import EdgePlanCore
import Foundation

/// Who is on the other end of a connection, from the socket's credentials (SO_PEERCRED).
public struct PeerIdentity: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// This process itself (in-process callers and tests).
    public static var current: PeerIdentity { PeerIdentity(uid: geteuid(), gid: getegid()) }
}

/// Decides who may `Report` (and so teach the daemon): root, the daemon's own user, and the users and groups the
/// policy's `reporting` section names (default: the daemon's own group). Names are resolved when the policy loads.
public struct ReportAuthorizer: Sendable, Equatable {
    public var users: Set<UInt32>
    public var groups: Set<UInt32>

    public init(users: Set<UInt32>, groups: Set<UInt32>) {
        self.users = users
        self.groups = groups
    }

    /// From a policy: each name is a user or group name, or a numeric id. An unknown name is an error.
    public static func resolve(_ reporting: ReportingPolicy) throws -> ReportAuthorizer {
        var users: Set<UInt32> = [0, geteuid()]
        var groups: Set<UInt32> = []
        for name in reporting.users {
            if let id = UInt32(name) {
                users.insert(id)
                continue
            }
            guard let entry = getpwnam(name) else {
                throw EdgePlanError.invalidInput("reporting: no user named '\(name)'", field: "reporting.users")
            }
            users.insert(entry.pointee.pw_uid)
        }
        if let names = reporting.groups {
            for name in names {
                if let id = UInt32(name) {
                    groups.insert(id)
                    continue
                }
                guard let entry = getgrnam(name) else {
                    throw EdgePlanError.invalidInput("reporting: no group named '\(name)'", field: "reporting.groups")
                }
                groups.insert(entry.pointee.gr_gid)
            }
        } else {
            groups.insert(getegid())
        }
        return ReportAuthorizer(users: users, groups: groups)
    }

    public func allows(_ peer: PeerIdentity) -> Bool { users.contains(peer.uid) || groups.contains(peer.gid) }
}
