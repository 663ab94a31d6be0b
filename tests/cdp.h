/* tests/cdp.h: a small client of the Chrome DevTools Protocol, enough for a test to drive a headless
 * Chromium: start it with --remote-debugging-pipe (it reads commands on fd 3 and writes replies and
 * events on fd 4, each message one JSON object ended by a NUL byte), open a page, evaluate JavaScript
 * in it, take a screenshot. Every console error and uncaught exception of the page is counted. */
#ifndef SINKTRACE_CDP_H
#define SINKTRACE_CDP_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int to, from;         /* our ends of the pipes to chromium's fd 3 and from its fd 4 */
    int next_id;          /* id of the next command */
    char *buf;            /* bytes read from chromium not yet handled */
    size_t len, cap;
    char session[128];    /* the page's session id (commands without one go to the browser) */
    char profile[64];     /* a temporary --user-data-dir, removed by cdp_close */
    int console_errors;   /* console.error calls, uncaught exceptions, log entries of level error */
    char first_error[512];
    double timeout;       /* seconds any one command may take */
} Cdp;

/* the chromium program to run: $CHROMIUM, else chromium on the PATH; NULL when there is none */
const char *cdp_find_chromium(void);

/* starts chromium headless with a window of w x h pixels; 0 or -1 with err */
int cdp_launch(Cdp *c, const char *chromium, int w, int h, char *err);
/* opens a page on url and waits for its load event */
int cdp_open(Cdp *c, const char *url, char *err);
/* evaluates a JavaScript expression in the page; its value (JSON.stringify'd when not a string) goes
 * to out */
int cdp_eval(Cdp *c, const char *expression, char *out, size_t out_size, char *err);
/* a PNG screenshot of the page into path */
int cdp_screenshot(Cdp *c, const char *path, char *err);
/* ends chromium and removes its profile */
void cdp_close(Cdp *c);

#endif
