/*
 * One timing loop for the floor and the daemon: each of CLIENTS threads connects, sends MESSAGE followed by a
 * NUL byte, reads until the NUL that ends the reply, CALLS times (after WARMUP untimed calls), blocking.
 * Prints one line: "p50_us p99_us calls_per_s calls errors".
 * Usage: floor_client SOCKET_PATH MESSAGE CALLS CLIENTS [WARMUP]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *socket_path;
static const char *message;
static size_t message_length;
static int calls, warmup;

struct worker {
    pthread_t thread;
    double *latencies;
    int errors;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One call: the message and its NUL out, bytes in until a NUL. Returns 0 on success. */
static int call(int fd, char *buffer, size_t size) {
    size_t sent = 0;
    while (sent < message_length + 1) {
        ssize_t n = write(fd, message + sent, message_length + 1 - sent);
        if (n <= 0) return -1;
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t got = read(fd, buffer, size);
        if (got <= 0) return -1;
        if (memchr(buffer, 0, (size_t)got)) return 0;
    }
}

static void *run(void *arg) {
    struct worker *worker = arg;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        worker->errors = calls;
        return NULL;
    }
    static __thread char buffer[1 << 20];
    for (int i = 0; i < warmup; i++)
        if (call(fd, buffer, sizeof buffer) != 0) worker->errors++;
    for (int i = 0; i < calls; i++) {
        double start = now();
        if (call(fd, buffer, sizeof buffer) != 0) worker->errors++;
        worker->latencies[i] = now() - start;
    }
    close(fd);
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s SOCKET_PATH MESSAGE CALLS CLIENTS [WARMUP]\n", argv[0]);
        return 64;
    }
    socket_path = argv[1];
    message = argv[2];
    message_length = strlen(message);
    calls = atoi(argv[3]);
    int clients = atoi(argv[4]);
    warmup = argc > 5 ? atoi(argv[5]) : calls / 10;
    if (calls < 1 || clients < 1) return 64;
    struct worker *workers = calloc((size_t)clients, sizeof *workers);
    double *all = calloc((size_t)clients * (size_t)calls, sizeof *all);
    for (int c = 0; c < clients; c++) workers[c].latencies = all + (size_t)c * (size_t)calls;
    double start = now();
    for (int c = 0; c < clients; c++) pthread_create(&workers[c].thread, NULL, run, &workers[c]);
    int errors = 0;
    for (int c = 0; c < clients; c++) {
        pthread_join(workers[c].thread, NULL);
        errors += workers[c].errors;
    }
    double elapsed = now() - start;
    size_t total = (size_t)clients * (size_t)calls;
    qsort(all, total, sizeof *all, compare);
    /* Throughput counts the warm-up calls too: they ran inside the same wall-clock window. */
    double per_second = (double)(total + (size_t)clients * (size_t)warmup) / elapsed;
    printf("%.2f %.2f %.0f %zu %d\n", all[total / 2] * 1e6, all[(size_t)((double)total * 0.99)] * 1e6, per_second, total, errors);
    return errors ? 1 : 0;
}
