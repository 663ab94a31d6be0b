/* tests/cdp.c: the DevTools Protocol client of cdp.h. */
#include "cdp.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "fixtures.h"

const char *cdp_find_chromium(void) {
    static char found[4096];
    const char *env = getenv("CHROMIUM");
    if (env && *env) return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(found, sizeof found, "%.*s/chromium", (int)n, p);
        if (n && access(found, X_OK) == 0) return found;
        p += n + (p[n] == ':');
    }
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* the child: the pipes onto fds 3 (commands in) and 4 (replies out), then chromium */
static void exec_chromium(const char *chromium, int cmd_in, int reply_out, const char *profile, int w, int h) {
    int in = fcntl(cmd_in, F_DUPFD, 10), out = fcntl(reply_out, F_DUPFD, 10); /* out of 3 and 4's way */
    dup2(in, 3);
    dup2(out, 4);
    int null = open("/dev/null", O_RDWR); /* chromium's own chatter is not the test's output */
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    for (int fd = 5; fd < 64; fd++) close(fd);
    char dir[128], size[64];
    snprintf(dir, sizeof dir, "--user-data-dir=%s", profile);
    snprintf(size, sizeof size, "--window-size=%d,%d", w, h);
    /* --no-sandbox: the sandbox refuses to run as root, as in CI containers */
    execl(chromium, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
          "--no-default-browser-check", "--disable-extensions", dir, size, "about:blank", (char *)NULL);
    _exit(127);
}

int cdp_launch(Cdp *c, const char *chromium, int w, int h, char *err) {
    memset(c, 0, sizeof *c);
    c->pid = -1, c->to = c->from = -1, c->next_id = 1, c->timeout = 20;
    if (fixture_make_tmpdir(c->profile, sizeof c->profile, "cdp_profile"))
        return st_errorf(err, "cannot create a chromium profile directory in /tmp");
    int cmd[2], reply[2];
    if (pipe(cmd) || pipe(reply)) return st_errorf(err, "pipe: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN); /* a chromium that died is an error of write(), not a signal */
    c->pid = fork();
    if (c->pid < 0) return st_errorf(err, "fork: %s", strerror(errno));
    if (c->pid == 0) exec_chromium(chromium, cmd[0], reply[1], c->profile, w, h);
    close(cmd[0]), close(reply[1]);
    c->to = cmd[1], c->from = reply[0];
    return 0;
}

/* sends {"id", "method", "params", "sessionId"} and a NUL; takes params; returns the id or -1 */
static int send_command(Cdp *c, const char *method, cJSON *params, int to_page, char *err) {
    cJSON *msg = cJSON_CreateObject();
    int id = c->next_id++;
    cJSON_AddNumberToObject(msg, "id", id);
    cJSON_AddStringToObject(msg, "method", method);
    cJSON_AddItemToObject(msg, "params", params ? params : cJSON_CreateObject());
    if (to_page) cJSON_AddStringToObject(msg, "sessionId", c->session);
    char *text = cJSON_PrintUnformatted(msg);
    cJSON_Delete(msg);
    size_t n = strlen(text) + 1, done = 0; /* with the NUL that ends a message */
    while (done < n) {
        ssize_t got = write(c->to, text + done, n - done);
        if (got <= 0) break;
        done += (size_t)got;
    }
    free(text);
    return done == n ? id : st_errorf(err, "%s: chromium stopped reading commands", method);
}

/* the next message from chromium, waiting until `deadline`; NULL with err on a timeout or an exit */
static cJSON *read_message(Cdp *c, double deadline, char *err) {
    for (;;) {
        char *end = c->len ? memchr(c->buf, 0, c->len) : NULL;
        if (end) {
            cJSON *msg = cJSON_Parse(c->buf);
            size_t used = (size_t)(end - c->buf) + 1;
            memmove(c->buf, end + 1, c->len - used);
            c->len -= used;
            if (msg) return msg;
            continue; /* not JSON: skip it */
        }
        double left = deadline - now();
        struct pollfd p = {c->from, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) {
            st_errorf(err, "chromium did not answer within %.0f s", c->timeout);
            return NULL;
        }
        if (c->cap - c->len < 65536) { /* room for the next read and a NUL */
            char *grown = st_malloc(c->cap = 2 * c->cap + 65536);
            if (c->len) memcpy(grown, c->buf, c->len);
            free(c->buf);
            c->buf = grown;
        }
        ssize_t got = read(c->from, c->buf + c->len, c->cap - c->len - 1);
        if (got <= 0) {
            st_errorf(err, "chromium closed its pipe (it exited)");
            return NULL;
        }
        c->len += (size_t)got;
        c->buf[c->len] = 0;
    }
}

/* the text of a string at a path of keys in msg, or NULL */
static const char *string_at(const cJSON *msg, const char *a, const char *b, const char *c) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    if (c) v = cJSON_GetObjectItemCaseSensitive(v, c);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void count_error(Cdp *c, const char *kind, const char *text) {
    if (c->console_errors++ == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s: %s", kind, text ? text : "(no text)");
}

/* an event: the errors of the page are counted; *loaded is set by the page's load event */
static void handle_event(Cdp *c, const cJSON *msg, int *loaded) {
    const char *method = string_at(msg, "method", NULL, NULL);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
    if (!method) return;
    if (!strcmp(method, "Page.loadEventFired")) {
        *loaded = 1;
    } else if (!strcmp(method, "Runtime.exceptionThrown")) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(params, "exceptionDetails");
        const char *text = string_at(d, "exception", "description", NULL);
        count_error(c, "uncaught exception", text ? text : string_at(d, "text", NULL, NULL));
    } else if (!strcmp(method, "Runtime.consoleAPICalled")) {
        const char *type = string_at(params, "type", NULL, NULL);
        const cJSON *arg = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(params, "args"), 0);
        if (type && (!strcmp(type, "error") || !strcmp(type, "assert")))
            count_error(c, "console.error", string_at(arg, "value", NULL, NULL));
    } else if (!strcmp(method, "Log.entryAdded")) {
        const char *level = string_at(params, "entry", "level", NULL);
        if (level && !strcmp(level, "error")) count_error(c, "log", string_at(params, "entry", "text", NULL));
    }
}

/* sends a command and waits for its reply, handling the events before it; returns the reply's
 * "result" (the caller deletes it) or NULL with err */
static cJSON *call(Cdp *c, const char *method, cJSON *params, int to_page, int *loaded, char *err) {
    int id = send_command(c, method, params, to_page, err);
    if (id < 0) return NULL;
    double deadline = now() + c->timeout;
    int ignored = 0;
    for (cJSON *msg; (msg = read_message(c, deadline, err));) {
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(msg, "id");
        if (!cJSON_IsNumber(mid)) {
            handle_event(c, msg, loaded ? loaded : &ignored);
        } else if (mid->valueint == id) {
            const char *error = string_at(msg, "error", "message", NULL);
            cJSON *result = cJSON_DetachItemFromObjectCaseSensitive(msg, "result");
            if (error) st_errorf(err, "%s: %s", method, error);
            cJSON_Delete(msg);
            if (!error) return result;
            cJSON_Delete(result);
            return NULL;
        }
        cJSON_Delete(msg);
    }
    return NULL;
}

/* a command whose result is not needed; 0 or -1 */
static int call_void(Cdp *c, const char *method, cJSON *params, int to_page, char *err) {
    cJSON *r = call(c, method, params, to_page, NULL, err);
    cJSON_Delete(r);
    return r ? 0 : -1;
}

int cdp_open(Cdp *c, const char *url, char *err) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "url", "about:blank");
    cJSON *r = call(c, "Target.createTarget", p, 0, NULL, err);
    const char *target = string_at(r, "targetId", NULL, NULL);
    if (!target) {
        cJSON_Delete(r);
        return r ? st_errorf(err, "Target.createTarget: no targetId") : -1;
    }
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "targetId", target);
    cJSON_AddBoolToObject(p, "flatten", 1); /* the page's messages carry its sessionId on this pipe */
    cJSON_Delete(r);
    r = call(c, "Target.attachToTarget", p, 0, NULL, err);
    const char *session = string_at(r, "sessionId", NULL, NULL);
    snprintf(c->session, sizeof c->session, "%s", session ? session : "");
    cJSON_Delete(r);
    if (!session) return r ? st_errorf(err, "Target.attachToTarget: no sessionId") : -1;
    if (call_void(c, "Runtime.enable", NULL, 1, err) || call_void(c, "Log.enable", NULL, 1, err) ||
        call_void(c, "Page.enable", NULL, 1, err))
        return -1;
    int loaded = 0;
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "url", url);
    r = call(c, "Page.navigate", p, 1, &loaded, err);
    const char *failed = string_at(r, "errorText", NULL, NULL);
    if (failed) st_errorf(err, "Page.navigate %s: %s", url, failed);
    cJSON_Delete(r);
    if (!r || failed) return -1;
    double deadline = now() + c->timeout;
    while (!loaded) { /* events until the load event */
        cJSON *msg = read_message(c, deadline, err);
        if (!msg) return -1;
        handle_event(c, msg, &loaded);
        cJSON_Delete(msg);
    }
    return 0;
}

int cdp_eval(Cdp *c, const char *expression, char *out, size_t out_size, char *err) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "expression", expression);
    cJSON_AddBoolToObject(p, "returnByValue", 1);
    cJSON *r = call(c, "Runtime.evaluate", p, 1, NULL, err);
    if (!r) return -1;
    const char *thrown = string_at(r, "exceptionDetails", "exception", "description");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "result"), "value");
    int rc = 0;
    if (thrown || cJSON_HasObjectItem(r, "exceptionDetails")) {
        rc = st_errorf(err, "evaluating %.80s: %s", expression, thrown ? thrown : "exception");
    } else if (cJSON_IsString(value)) {
        snprintf(out, out_size, "%s", value->valuestring);
    } else {
        char *text = value ? cJSON_PrintUnformatted(value) : NULL;
        snprintf(out, out_size, "%s", text ? text : "undefined");
        free(text);
    }
    cJSON_Delete(r);
    return rc;
}

/* decodes base64 text into out (room for 3/4 of its length); returns the bytes written */
static size_t base64_decode(const char *text, unsigned char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    unsigned v = 0;
    int bits = 0;
    for (const char *p = text; *p && *p != '='; p++) {
        const char *digit = strchr(alphabet, *p);
        if (!digit) continue;
        v = v << 6 | (unsigned)(digit - alphabet);
        if ((bits += 6) >= 8) out[n++] = (unsigned char)(v >> (bits -= 8));
    }
    return n;
}

int cdp_screenshot(Cdp *c, const char *path, char *err) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "format", "png");
    cJSON *r = call(c, "Page.captureScreenshot", p, 1, NULL, err);
    const char *data = string_at(r, "data", NULL, NULL);
    if (!data) {
        cJSON_Delete(r);
        return r ? st_errorf(err, "Page.captureScreenshot: no data") : -1;
    }
    unsigned char *png = st_malloc(strlen(data) / 4 * 3 + 3);
    size_t n = base64_decode(data, png);
    cJSON_Delete(r);
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(png, 1, n, f) == n ? 0 : st_errorf(err, "%s: cannot write the screenshot", path);
    if (f && fclose(f) != 0 && !rc) rc = st_errorf(err, "%s: cannot write the screenshot", path);
    free(png);
    return rc;
}

void cdp_close(Cdp *c) {
    char err[ST_ERR_LEN];
    if (c->to >= 0) send_command(c, "Browser.close", NULL, 0, err);
    if (c->to >= 0) close(c->to);
    if (c->from >= 0) close(c->from);
    for (int i = 0; c->pid > 0 && i < 50 && waitpid(c->pid, NULL, WNOHANG) == 0; i++) usleep(100000);
    if (c->pid > 0 && kill(c->pid, 0) == 0) { /* still there after 5 s */
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    if (c->profile[0]) fixture_remove_dir(c->profile);
    free(c->buf);
    memset(c, 0, sizeof *c);
}
