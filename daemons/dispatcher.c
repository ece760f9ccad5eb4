/*
 * dmce-dispatcher - the Memory Dispatcher: balances setups and mallocs over
 * the memory daemons, keeps the block directory, mirrors every block on a
 * second daemon and fails blocks over when a daemon dies. Its life:
 *   1. config: defaults, config file, flags (one table: dmce_disp_config_defs)
 *   2. start: lock, socket, control loop, orchestrator, spawned daemons
 *   3. loop: signals (SIGCHLD: reap and respawn) until SIGTERM/SIGINT
 *   4. stop: spawned daemons stopped, socket removed
 * All the logic lives in runtime/dispatcher.c; docs/dispatcher.md says what
 * it promises.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dispatcher.h"
#include <dmce/error.h>

#include "log.h"

int main(int argc, char **argv)
{
    /* 1. config */
    dmce_disp_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (dmce_config_defaults(dmce_disp_config_defs, dmce_disp_config_ndefs, &cfg) < 0) {
        fprintf(stderr, "dmce-dispatcher: bad built-in defaults\n");
        return 70;
    }
    char err[512];
    int r = dmce_config_parse_args(dmce_disp_config_defs, dmce_disp_config_ndefs, &cfg, argc,
                                   argv, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "dmce-dispatcher: %s\n", err);
        return 64;
    }
    if (r == 1) {
        dmce_config_usage(dmce_disp_config_defs, dmce_disp_config_ndefs, "dmce-dispatcher",
                          "The dmce memory dispatcher: balancing, block directory, mirroring, "
                          "failover.",
                          stdout);
        return 0;
    }
    if (r == 2) {
        dmce_config_dump(dmce_disp_config_defs, dmce_disp_config_ndefs, &cfg, stdout);
        return 0;
    }
    dmce_log_init("dispatcher", cfg.log_level);

    /* Signals are taken here only: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        LOG_ERROR("signalfd: %s", strerror(errno));
        return 71;
    }

    /* 2. start */
    dmce_disp_t *d;
    r = dmce_disp_start(&cfg, &d);
    if (r < 0) {
        LOG_ERROR("cannot start: %s", dmce_strerror(r));
        return 1;
    }

    /* 3. loop: the poll timeout paces respawns (their backoff) */
    for (;;) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int n = poll(&p, 1, 200);
        if (n > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    LOG_INFO("SIGHUP: nothing to reload; still serving");
                    continue;
                }
                if (si.ssi_signo != SIGCHLD) {
                    LOG_INFO("signal %u: stopping", si.ssi_signo);
                    break;
                }
            }
        }
        dmce_disp_reap(d);
    }

    /* 4. stop */
    dmce_disp_stop(d);
    close(sfd);
    return 0;
}
