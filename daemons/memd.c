/*
 * dmce-memd - the memory daemon. Its life, in phases:
 *   1. config: defaults, config file, flags (one table: memd_config_defs)
 *   2. start: lock, stale cleanup, blocks, NUMA placement, socket, workers
 *   3. loop: tick every 100 ms (grace-period expiry) until SIGTERM/SIGINT
 *   4. stop: close clients, unlink every shm object, remove the socket
 * All the logic lives in runtime/memd_server.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <dmce/error.h>

#include "log.h"
#include "memd_server.h"

int main(int argc, char **argv)
{
    /* 1. config */
    dmce_memd_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (dmce_config_defaults(dmce_memd_config_defs, dmce_memd_config_ndefs, &cfg) < 0) {
        fprintf(stderr, "dmce-memd: bad built-in defaults\n");
        return 70;
    }
    char err[512];
    int r = dmce_config_parse_args(dmce_memd_config_defs, dmce_memd_config_ndefs, &cfg, argc,
                                   argv, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "dmce-memd: %s\n", err);
        return 64;
    }
    if (r == 1) {
        dmce_config_usage(dmce_memd_config_defs, dmce_memd_config_ndefs, "dmce-memd",
                          "The dmce memory daemon: owns shared-memory blocks and serves MSMP.",
                          stdout);
        return 0;
    }
    if (r == 2) {
        dmce_config_dump(dmce_memd_config_defs, dmce_memd_config_ndefs, &cfg, stdout);
        return 0;
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "memd[%lld]", (long long)cfg.id);
    dmce_log_init(prefix, cfg.log_level);

    /* Signals are taken by the main loop only: block them before threads start. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        LOG_ERROR("signalfd: %s", strerror(errno));
        return 71;
    }

    /* 2. start */
    dmce_memd_t *m;
    r = dmce_memd_start(&cfg, &m);
    if (r < 0) {
        LOG_ERROR("cannot start: %s", dmce_strerror(r));
        return 1;
    }

    /* 3. loop */
    for (;;) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int n = poll(&p, 1, 100);
        if (n > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    LOG_INFO("SIGHUP: nothing to reload yet; still serving");
                    continue;
                }
                LOG_INFO("signal %u: stopping", si.ssi_signo);
                break;
            }
        }
        dmce_memd_tick(m);
    }

    /* 4. stop */
    dmce_memd_stop(m);
    close(sfd);
    return 0;
}
