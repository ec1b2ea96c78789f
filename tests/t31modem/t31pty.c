/*
 * t31pty: a Class 1 (T.31) fax modem on a pty whose line goes to a real T.30 answering
 * fax terminal, for testing mailgw's HylaFAX driver against real fax signalling.
 *
 * Written for mailgw from spandsp's installed LGPL-2.1 headers only (no code from
 * spandsp's GPL test programs). Dynamically linked to Debian's libspandsp.
 *
 *   t31pty MODES.txt EVENTS.jsonl RXDIR
 *
 * Prints the pty slave's path, then runs in real time (20 ms ticks of 160 samples at
 * 8 kHz) until stdin is closed: DTE bytes -> t31_at_rx (only while the modem's CTS is
 * on), t31_tx -> far end's fax_rx, far end's fax_tx -> t31_rx.
 *
 * MODES.txt is re-read at each dial: one line per number ending, tab-separated,
 *   ENDING  MODE  AFTER  CSID        (ENDING "*" is the default)
 * MODE: ok | busy | noanswer | nodialtone | drop (the far end goes silent once page
 * AFTER+1 has been received, before confirming it).
 * Each call ends with one JSON line in EVENTS.jsonl.
 *
 * Incoming calls (the far end transmits, HylaFAX's faxgetty answers): when RXDIR/call.txt
 * appears (one line: CALLER<TAB>CSID<TAB>TIFF), it is removed, the modem rings every 3 s
 * with the caller's number (NMBR=) until the DTE answers (ATA), then a T.30 calling
 * terminal with that CSID sends the TIFF's pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES  /* the T.31 modem's AT state, for caller ID */
#include <spandsp.h>

#define SAMPLES 160

static const char *modes_path, *events_path, *rx_dir;
static int master_fd = -1;
static int cts = 1;
static int calls = 0;
static t31_state_t *modem;

static struct {
    int ringing;   /* an incoming call rings until answered: ticks to the next RING */
    int rings;
    char caller[64], csid[64], tiff[512];
} incoming;

static struct {
    fax_state_t *fax;
    int dead;      /* the far end stopped answering (drop mode) */
    int reported;  /* the event line is written */
    int after;
    char number[64], mode[16], csid[64], file[512];
} far;

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char) *s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static void report(const char *result, int code)
{
    t30_stats_t st;
    t30_state_t *t;
    FILE *f;

    if (far.reported)
        return;
    far.reported = 1;
    memset(&st, 0, sizeof(st));
    f = fopen(events_path, "a");
    if (f == NULL)
        return;
    fprintf(f, "{\"number\": ");
    json_str(f, far.number);
    fprintf(f, ", \"mode\": ");
    json_str(f, far.mode);
    fprintf(f, ", \"result\": ");
    json_str(f, result);
    if (far.fax) {
        t = fax_get_t30_state(far.fax);
        t30_get_transfer_statistics(t, &st);
        fprintf(f, ", \"csid\": ");
        json_str(f, far.csid);
        fprintf(f, ", \"remote_ident\": ");
        json_str(f, t30_get_rx_ident(t));
        fprintf(f, ", \"code\": %d, \"text\": ", code);
        json_str(f, t30_completion_code_to_str(code));
        fprintf(f, ", \"bit_rate\": %d, \"ecm\": %d, \"file\": ", st.bit_rate,
                st.error_correcting_mode);
        json_str(f, far.file);
    }
    fprintf(f, ", \"pages\": %d}\n", far.dead ? far.after
            : strcmp(far.mode, "incoming") == 0 ? st.pages_tx : st.pages_rx);
    fclose(f);
}

static int phase_d(t30_state_t *t, void *user_data, int result)
{
    t30_stats_t st;

    (void) user_data;
    (void) result;
    t30_get_transfer_statistics(t, &st);
    if (strcmp(far.mode, "drop") == 0 && st.pages_rx > far.after && !far.dead) {
        far.dead = 1;  /* page AFTER+1 arrived: never confirm it */
        report("dropped", -1);
    }
    return T30_ERR_OK;
}

static void phase_e(t30_state_t *t, void *user_data, int code)
{
    (void) t;
    (void) user_data;
    report(code == T30_ERR_OK ? "ok" : "failed", code);
}

static void end_call(void)
{
    if (far.fax) {
        if (!far.reported)
            t30_terminate(fax_get_t30_state(far.fax));
        report("hangup", -1);
        fax_free(far.fax);
        far.fax = NULL;
    }
}

static void choose_mode(const char *number)
{
    char line[256];
    size_t best = 0;
    int have_default = 0;
    FILE *f;

    snprintf(far.mode, sizeof(far.mode), "ok");
    snprintf(far.csid, sizeof(far.csid), "T31 FAR END");
    far.after = 1;
    f = fopen(modes_path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *key = strtok(line, "\t\n");
        char *mode = strtok(NULL, "\t\n");
        char *after = strtok(NULL, "\t\n");
        char *csid = strtok(NULL, "\n");
        size_t klen, nlen = strlen(number);
        int match;

        if (key == NULL || mode == NULL)
            continue;
        klen = strlen(key);
        match = strcmp(key, "*") == 0 ? (!have_default && best == 0)
                : (klen <= nlen && strcmp(number + nlen - klen, key) == 0 && klen > best);
        if (!match)
            continue;
        if (strcmp(key, "*") == 0)
            have_default = 1;
        else
            best = klen;
        snprintf(far.mode, sizeof(far.mode), "%s", mode);
        far.after = after ? atoi(after) : 1;
        if (csid)
            snprintf(far.csid, sizeof(far.csid), "%s", csid);
    }
    fclose(f);
}

static void place_call(const char *number)
{
    t30_state_t *t;

    end_call();
    memset(&far, 0, sizeof(far));
    snprintf(far.number, sizeof(far.number), "%s", number ? number : "");
    choose_mode(far.number);
    if (strcmp(far.mode, "busy") == 0 || strcmp(far.mode, "noanswer") == 0
        || strcmp(far.mode, "nodialtone") == 0) {
        report(far.mode, -1);
        t31_call_event(modem, strcmp(far.mode, "busy") == 0 ? AT_CALL_EVENT_BUSY
                       : strcmp(far.mode, "noanswer") == 0 ? AT_CALL_EVENT_NO_ANSWER
                       : AT_CALL_EVENT_NO_DIALTONE);
        return;
    }
    snprintf(far.file, sizeof(far.file), "%s/rx-%d-%03d.tif", rx_dir, (int) getpid(), ++calls);
    far.fax = fax_init(NULL, 0);
    fax_set_transmit_on_idle(far.fax, 1);
    t = fax_get_t30_state(far.fax);
    t30_set_tx_ident(t, far.csid);
    t30_set_rx_file(t, far.file, -1);
    t30_set_ecm_capability(t, 1);
    t30_set_supported_modems(t, T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17);
    t30_set_phase_d_handler(t, phase_d, NULL);
    t30_set_phase_e_handler(t, phase_e, NULL);
    t31_call_event(modem, AT_CALL_EVENT_CONNECTED);
}

static void check_incoming(void)
{
    char path[600], line[700];
    char *caller, *csid, *tiff;
    FILE *f;

    if (incoming.ringing || far.fax)
        return;
    snprintf(path, sizeof(path), "%s/call.txt", rx_dir);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return;
    }
    fclose(f);
    unlink(path);
    caller = strtok(line, "\t\n");
    csid = strtok(NULL, "\t\n");
    tiff = strtok(NULL, "\t\n");
    if (caller == NULL || csid == NULL || tiff == NULL)
        return;
    snprintf(incoming.caller, sizeof(incoming.caller), "%s", caller);
    snprintf(incoming.csid, sizeof(incoming.csid), "%s", csid);
    snprintf(incoming.tiff, sizeof(incoming.tiff), "%s", tiff);
    incoming.ringing = 1;  /* ring at the next tick */
    incoming.rings = 0;
    at_reset_call_info(&modem->at_state);
    at_set_call_info(&modem->at_state, "NMBR", incoming.caller);
    modem->at_state.display_call_info = 1;
}

static void ring_tick(void)
{
    if (!incoming.ringing || --incoming.ringing > 0)
        return;
    if (++incoming.rings > 20) {  /* nobody answered in a minute */
        memset(&far, 0, sizeof(far));
        snprintf(far.number, sizeof(far.number), "%s", incoming.caller);
        snprintf(far.mode, sizeof(far.mode), "incoming");
        report("noanswer", -1);
        memset(&incoming, 0, sizeof(incoming));
        return;
    }
    modem->at_state.call_info_displayed = 0;
    t31_call_event(modem, AT_CALL_EVENT_ALERTING);
    incoming.ringing = 150;  /* 3 s */
}

static void answer_call(void)
{
    t30_state_t *t;

    end_call();
    memset(&far, 0, sizeof(far));
    snprintf(far.number, sizeof(far.number), "%s", incoming.caller);
    snprintf(far.mode, sizeof(far.mode), "incoming");
    snprintf(far.csid, sizeof(far.csid), "%s", incoming.csid);
    snprintf(far.file, sizeof(far.file), "%s", incoming.tiff);
    memset(&incoming, 0, sizeof(incoming));
    far.fax = fax_init(NULL, 1);  /* the calling party: it transmits */
    fax_set_transmit_on_idle(far.fax, 1);
    t = fax_get_t30_state(far.fax);
    t30_set_tx_ident(t, far.csid);
    t30_set_tx_file(t, far.file, -1, -1);
    t30_set_ecm_capability(t, 1);
    t30_set_supported_modems(t, T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17);
    t30_set_phase_d_handler(t, phase_d, NULL);
    t30_set_phase_e_handler(t, phase_e, NULL);
    t31_call_event(modem, AT_CALL_EVENT_ANSWERED);
}

static int at_tx(at_state_t *s, void *user_data, const uint8_t *buf, size_t len)
{
    (void) s;
    (void) user_data;
    while (len > 0) {
        ssize_t n = write(master_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}

static int modem_control(t31_state_t *s, void *user_data, int op, const char *num)
{
    (void) s;
    (void) user_data;
    switch (op) {
    case AT_MODEM_CONTROL_CALL:
        place_call(num);
        break;
    case AT_MODEM_CONTROL_ANSWER:
        if (incoming.rings > 0)
            answer_call();
        break;
    case AT_MODEM_CONTROL_HANGUP:
    case AT_MODEM_CONTROL_ONHOOK:
        end_call();
        break;
    case AT_MODEM_CONTROL_CTS:
        cts = (int) (intptr_t) num;
        break;
    default:
        break;
    }
    return 0;
}

static int open_pty(void)
{
    struct termios tio;
    struct passwd *pw = getpwnam("uucp");
    struct group *gr = getgrnam("dialout");
    const char *slave_name;
    int slave;

    master_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (master_fd < 0 || grantpt(master_fd) || unlockpt(master_fd))
        return -1;
    slave_name = ptsname(master_fd);
    slave = open(slave_name, O_RDWR | O_NOCTTY);  /* kept open: no EIO between sessions */
    if (slave < 0)
        return -1;
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    if (pw && chown(slave_name, pw->pw_uid, gr ? gr->gr_gid : pw->pw_gid) != 0)
        perror("chown");
    chmod(slave_name, 0666);
    fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    printf("%s\n", slave_name);
    fflush(stdout);
    return 0;
}

int main(int argc, char *argv[])
{
    int16_t to_far[SAMPLES], to_modem[SAMPLES];
    struct timespec next;
    char buf[512];

    if (argc != 4) {
        fprintf(stderr, "usage: %s MODES.txt EVENTS.jsonl RXDIR\n", argv[0]);
        return 2;
    }
    modes_path = argv[1];
    events_path = argv[2];
    rx_dir = argv[3];
    if (open_pty() != 0) {
        perror("pty");
        return 1;
    }
    modem = t31_init(NULL, at_tx, NULL, modem_control, NULL, NULL, NULL);
    if (modem == NULL)
        return 1;
    t31_set_transmit_on_idle(modem, 1);
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        ssize_t n;
        int len, i;

        n = read(0, buf, sizeof(buf));
        if (n == 0)
            break;  /* our parent closed stdin: stop */
        if (cts) {
            n = read(master_fd, buf, sizeof(buf));
            if (n > 0)
                t31_at_rx(modem, buf, (int) n);
        }
        check_incoming();
        ring_tick();
        len = t31_tx(modem, to_far, SAMPLES);
        for (i = len; i < SAMPLES; i++)
            to_far[i] = 0;
        memset(to_modem, 0, sizeof(to_modem));
        if (far.fax && !far.dead) {
            fax_rx(far.fax, to_far, SAMPLES);
            len = fax_tx(far.fax, to_modem, SAMPLES);
            for (i = len; i < SAMPLES; i++)
                to_modem[i] = 0;
        }
        t31_rx(modem, to_modem, SAMPLES);
        next.tv_nsec += 20000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    end_call();
    t31_free(modem);
    return 0;
}
