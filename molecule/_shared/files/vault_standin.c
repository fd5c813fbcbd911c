/*
 * A stand-in for HashiCorp Vault in the tests: no Vault binary can be downloaded where they
 * run, and OpenBao no longer calls mlock. Like `vault server` it locks all of its memory with
 * mlockall(MCL_CURRENT|MCL_FUTURE) at start and exits 1 with Vault's message when that fails;
 * then it keeps running, as vault.service does.
 *
 *   vault [server ...] [--exit] [--grow BYTES] [--grow-on-signal BYTES]
 *     --exit                   exit 0 once the memory is locked (a one-shot check)
 *     --grow BYTES             map and touch BYTES more after locking, as a growing Vault does
 *     --grow-on-signal BYTES   on each SIGUSR1, map and touch BYTES more: a Vault that grows
 *                              after it started; under MCL_FUTURE the kernel refuses a mapping
 *                              that passes the limit, and the stand-in exits 1 saying so
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

int main(int argc, char **argv)
{
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
    for (;;) {
        pause();
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
