/*
 * A stand-in for HashiCorp Vault in the tests: no Vault binary can be downloaded where they
 * run, and OpenBao no longer calls mlock. Like `vault server` it locks all of its memory with
 * mlockall(MCL_CURRENT|MCL_FUTURE) at start and exits 1 with Vault's message when that fails;
 * then it keeps running, as vault.service does.
 *
 *   vault [server ...] [--exit] [--grow BYTES] [--grow-on-signal BYTES] [--api HOST:PORT]
 *     --exit                   exit 0 once the memory is locked (a one-shot check)
 *     --grow BYTES             map and touch BYTES more after locking, as a growing Vault does
 *     --grow-on-signal BYTES   on each SIGUSR1, map and touch BYTES more: a Vault that grows
 *                              after it started; under MCL_FUTURE the kernel refuses a mapping
 *                              that passes the limit, and the stand-in exits 1 saying so
 *     --api HOST:PORT          once locked, answer GET /v1/sys/health over plain HTTP (IPv4) as
 *                              an initialised, unsealed, active Vault does, so that what waits
 *                              for Vault's API after a restart has an answer; nothing else
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what, int err)
{
    fprintf(stderr, "Error initializing core: %s: %s\n\n"
            "This usually means that the mlock syscall is not available.\n"
            "Vault uses mlock to prevent memory from being swapped to\n"
            "disk. This requires root privileges as well as a machine\n"
            "that supports mlock. Please enable mlock on your system or\n"
            "disable Vault from using it. To disable Vault from using it,\n"
            "set the `disable_mlock` configuration option in your configuration\n"
            "file.\n", what, err == ENOMEM ? "cannot allocate memory" : strerror(err));
    return 1;
}

static volatile sig_atomic_t grow_requested;

static void request_growth(int signo)
{
    (void)signo;
    grow_requested = 1;
}

/* Map and touch ``bytes`` more; 0 when the kernel let the locked memory grow. */
static int grow_by(size_t bytes)
{
    char *more = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (more == MAP_FAILED)
        return errno;
    memset(more, 1, bytes);
    return 0;
}

/* A listening socket on "HOST:PORT", or -1. */
static int listen_on(char *addr)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    char *colon = strrchr(addr, ':');
    int fd, one = 1;

    if (!colon)
        return -1;
    *colon = '\0';
    sin.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 16) != 0)
        return -1;
    return fd;
}

/* One request, one answer: Vault's health body for an active, unsealed server. */
static void answer(int listener)
{
    static const char body[] = "{\"initialized\":true,\"sealed\":false,\"standby\":false,"
        "\"performance_standby\":false,\"version\":\"0.0.0-standin\",\"cluster_name\":\"standin\"}";
    char request[1024], reply[512];
    int fd = accept(listener, NULL, NULL), n;

    if (fd < 0)
        return;
    n = (int)read(fd, request, sizeof request - 1);
    request[n > 0 ? n : 0] = '\0';
    if (strncmp(request, "GET /v1/sys/health", 18) == 0)
        n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof body - 1, body);
    else
        n = snprintf(reply, sizeof reply, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
    if (write(fd, reply, (size_t)n) < 0)
        perror("write");
    close(fd);
}

int main(int argc, char **argv)
{
    char *api = NULL;
    struct pollfd listener = { .fd = -1, .events = POLLIN };
    int exit_when_locked = 0;
    size_t grow = 0, grow_on_signal = 0;
    int err;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exit") == 0)
            exit_when_locked = 1;
        else if (strcmp(argv[i], "--grow") == 0 && i + 1 < argc)
            grow = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--grow-on-signal") == 0 && i + 1 < argc)
            grow_on_signal = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--api") == 0 && i + 1 < argc)
            api = argv[++i];
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        return fail("Failed to lock memory", errno);
    /* Under MCL_FUTURE the kernel refuses a mapping that would pass the limit. */
    if (grow && (err = grow_by(grow)) != 0)
        return fail("Failed to lock memory", err);  /* as Vault, whose start maps that much */
    printf("memory locked\n");
    fflush(stdout);
    if (exit_when_locked)
        return 0;
    if (grow_on_signal)
        signal(SIGUSR1, request_growth);
    if (api && (listener.fd = listen_on(api)) < 0) {
        perror("--api");
        return 1;
    }
    for (;;) {
        /* poll on no descriptor at all (fd -1) sleeps until a signal, as pause() would */
        if (poll(&listener, 1, -1) > 0 && (listener.revents & POLLIN))
            answer(listener.fd);
        if (!grow_requested)
            continue;
        grow_requested = 0;
        if ((err = grow_by(grow_on_signal)) != 0) {
            fprintf(stderr, "fatal: Failed to lock memory: a new mapping of %zu bytes under "
                    "mlockall(MCL_FUTURE): %s\n", grow_on_signal, strerror(err));
            return 1;
        }
        printf("locked %zu bytes more\n", grow_on_signal);
        fflush(stdout);
    }
}
