/*
 * netem/rusage: run a command and append the CPU time of its whole process
 * tree to a file, daemons included.
 *
 *   rusage -o FILE [-l LABEL] [-d] -- CMD [ARGS...]
 *
 * The process that runs CMD is a child subreaper (PR_SET_CHILD_SUBREAPER):
 * every descendant that is orphaned (a server that forks a daemon and exits,
 * as vfer-recv does once its client is in) is re-parented to it, and it
 * waits for all of them. Their rusage (getrusage RUSAGE_CHILDREN: user+sys
 * of every reaped descendant, an ssh client started by scp, vfer-send or qcp
 * included) is then appended to FILE as one line (O_APPEND: several wrapped
 * processes may share a file):
 *
 *   LABEL user=SECONDS sys=SECONDS maxrss_kb=KB wall=SECONDS status=CODE procs=N pids=P,...
 *
 * wall runs until the last descendant has ended; status is CMD's own exit
 * code (128+N for signal N); pids are the processes reaped here (CMD first,
 * then orphans such as a daemon; at most 16), e.g. for `perf report --pid`.
 *
 * Without -d the wrapper exits, as CMD did, once the whole tree is gone. With
 * -d (for a command started by sshd) it exits as CMD did as soon as CMD
 * itself exits, so ssh sees the command end exactly as without the wrapper,
 * while a detached process (stdio on /dev/null) goes on reaping the daemons
 * and writes the line when they are gone. INT/TERM/HUP/QUIT sent to the
 * wrapper are forwarded to CMD. The wrapper's own CPU time (about a
 * millisecond) is not counted. Built by netem/fastpath with the C compiler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t target = -1;

static void forward(int sig) {
    if (target > 0)
        kill(target, sig);
}

static void on_signals(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
        sigaction(sigs[k], &sa, NULL);
}

static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static int code_of(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

static int read_all(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void write_all(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

/* Run CMD as a subreaper's child, reap the whole tree, write the line.
 * status_fd >= 0 (-d): send CMD's pid then its wait status there and detach. */
static int run_tree(char **cmd, const char *out, const char *label, int status_fd) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        perror("rusage: PR_SET_CHILD_SUBREAPER (daemons will not be counted)");
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 127;
    }
    if (pid == 0) {
        if (status_fd >= 0)
            close(status_fd);
        execvp(cmd[0], cmd);
        fprintf(stderr, "rusage: cannot run %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    target = pid;
    if (status_fd >= 0) {
        int32_t p = pid;
        write_all(status_fd, &p, sizeof p);
        /* Detach: ssh must see EOF once CMD (and its daemon) close stdio. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        signal(SIGHUP, SIG_IGN);
        signal(SIGINT, SIG_IGN);
    } else {
        on_signals(forward);
    }
    int status = 0, procs = 0;
    char pids[256] = "";
    size_t plen = 0;
    for (;;) {
        int st;
        pid_t w = wait4(-1, &st, 0, NULL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: the tree is gone */
        }
        procs++;
        if (procs <= 16 && plen < sizeof pids - 16)
            plen += (size_t)snprintf(pids + plen, sizeof pids - plen, "%s%d", plen ? "," : "", (int)w);
        if (w == pid) {
            status = st;
            if (status_fd >= 0) {
                int32_t s = st;
                write_all(status_fd, &s, sizeof s);
                close(status_fd);
                status_fd = -1;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_CHILDREN, &ru);
    char line[512];
    int n = snprintf(line, sizeof line,
                     "%s user=%.3f sys=%.3f maxrss_kb=%ld wall=%.3f status=%d procs=%d pids=%s\n", label,
                     tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss,
                     (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, code_of(status),
                     procs, pids);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        write_all(fd, line, n > 0 ? (size_t)n : 0);
        close(fd);
    } else {
        fprintf(stderr, "rusage: cannot open %s: %s\n", out, strerror(errno));
    }
    return status;
}

static int exit_like(int st) {
    if (WIFSIGNALED(st)) {
        signal(WTERMSIG(st), SIG_DFL);
        raise(WTERMSIG(st));
    }
    return code_of(st);
}

int main(int argc, char **argv) {
    const char *out = NULL, *label = NULL;
    int detach = 0, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "-l") && i + 1 < argc) {
            label = argv[++i];
        } else if (!strcmp(argv[i], "-d")) {
            detach = 1;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else {
            break;
        }
    }
    if (!out || i >= argc) {
        fprintf(stderr, "usage: rusage -o FILE [-l LABEL] [-d] -- CMD [ARGS...]\n");
        return 127;
    }
    if (!label)
        label = argv[i];
    if (!detach)
        return exit_like(run_tree(argv + i, out, label, -1));

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("rusage: pipe");
        return 127;
    }
    pid_t reaper = fork();
    if (reaper < 0) {
        perror("rusage: fork");
        return 127;
    }
    if (reaper == 0) {
        close(fds[0]);
        setsid(); /* out of ssh's session and process group */
        run_tree(argv + i, out, label, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    int32_t p, st;
    if (read_all(fds[0], &p, sizeof p) != 0)
        return 127;
    target = p;
    on_signals(forward);
    if (read_all(fds[0], &st, sizeof st) != 0)
        return 127;
    return exit_like(st);
}
