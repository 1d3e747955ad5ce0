#ifndef EDGEPLAN_CSYSTEMD_SHIM_H
#define EDGEPLAN_CSYSTEMD_SHIM_H

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>
#include <malloc.h>

/// Sends a plain notification string; Swift cannot call the variadic sd_notifyf.
static inline int edgeplan_sd_notify(int unset_environment, const char *state) {
    return sd_notify(unset_environment, state);
}

/// Sends one structured journal entry built from preformatted "FIELD=value" iovecs.
static inline int edgeplan_sd_journal_sendv(const struct iovec *iov, int n) {
    return sd_journal_sendv(iov, n);
}

/* The peer credentials SO_PEERCRED returns (struct ucred, which glibc hides behind _GNU_SOURCE). */
struct edgeplan_peer_credentials {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/// Returns the allocator's free memory to the system (glibc's malloc_trim, which the Glibc module does not export).
static inline int edgeplan_malloc_trim(void) {
    return malloc_trim(0);
}

#endif
