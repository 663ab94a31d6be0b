#include "sweep.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/binfile.h"
#include "../common/util.h"
#include "checkpoint.h"
#include "rundir.h"

/* ------------------------------------------------------------------------------------------------ */
/* parsing */

typedef struct {
    Sweep *s;
    SweepVariant *cur;  /* the part of the file being read: global, or the last [variant] */
    TrainConfig trial;  /* every value is tried on it, so a bad one is reported at its line */
} ParseCtx;

static int start_variant(ParseCtx *p, const char *line, const char *where, char *err) {
    size_t n = strlen(line);
    if (n < 3 || line[0] != '[' || line[n - 1] != ']' || n - 2 >= sizeof p->s->variants[0].name)
        return st_errorf(err, "%s: expected 'key = value' or '[variant name]', found '%s'", where, line);
    if (p->s->n_variants == SWEEP_MAX_VARIANTS)
        return st_errorf(err, "%s: expected at most %d variants, found more", where, SWEEP_MAX_VARIANTS);
    SweepVariant *v = &p->s->variants[p->s->n_variants];
    memset(v, 0, sizeof *v);
    memcpy(v->name, line + 1, n - 2);
    for (int i = 0; i < p->s->n_variants; i++)
        if (!strcmp(p->s->variants[i].name, v->name)) return st_errorf(err, "%s: variant [%s] given twice", where, v->name);
    p->s->n_variants++;
    p->cur = v;
    return 0;
}

/* a key may be set or listed once per section: a second would silently win, or double the runs */
static int check_key_once(const SweepVariant *v, const char *key, const char *where, char *err) {
    for (int i = 0; i < v->n_axes; i++)
        if (!strcmp(v->axes[i].key, key)) return st_errorf(err, "%s: %s: key given twice (already a list)", where, key);
    for (int i = 0; i < v->n_settings; i++)
        if (!strcmp(v->settings[i].key, key)) return st_errorf(err, "%s: %s: key given twice", where, key);
    return 0;
}

/* two values of a list that read as the same setting ("0.001, 1e-3") would make two identical runs */
static int check_value_new(ParseCtx *p, const SweepAxis *a, const char *where, char *err) {
    char value[600], earlier[600];
    config_get(&p->trial, a->key, value, sizeof value);
    TrainConfig probe = p->trial;
    for (int i = 0; i < a->n_values - 1; i++) {
        config_set(&probe, a->key, a->values[i], where, err); /* read before, so it succeeds */
        config_get(&probe, a->key, earlier, sizeof earlier);
        if (!strcmp(value, earlier))
            return st_errorf(err, "%s: %s: value '%s' given twice (as '%s' and '%s')", where, a->key, value,
                             a->values[i], a->values[a->n_values - 1]);
    }
    return 0;
}

static int add_axis(ParseCtx *p, const char *key, const char *list, const char *where, char *err) {
    SweepVariant *v = p->cur;
    if (check_key_once(v, key, where, err)) return -1;
    if (v->n_axes == SWEEP_MAX_AXES) return st_errorf(err, "%s: expected at most %d lists, found more", where, SWEEP_MAX_AXES);
    SweepAxis *a = &v->axes[v->n_axes];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", key);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        char *val = st_trim(item);
        if (!*val) return st_errorf(err, "%s: %s: expected a value between commas, found none", where, key);
        if (a->n_values == SWEEP_MAX_VALUES || strlen(val) >= sizeof a->values[0])
            return st_errorf(err, "%s: %s: expected at most %d values of < %zu characters", where, key,
                             SWEEP_MAX_VALUES, sizeof a->values[0]);
        if (config_set(&p->trial, key, val, where, err)) return -1;
        snprintf(a->values[a->n_values++], sizeof a->values[0], "%s", val);
        if (check_value_new(p, a, where, err)) return -1;
    }
    v->n_axes++;
    return 0;
}

static int parse_line(void *ctx, const char *key, const char *value, const char *where, char *err) {
    ParseCtx *p = ctx;
    if (!value) return start_variant(p, key, where, err);
    if (!strcmp(key, "config")) {
        if (p->cur != &p->s->global) return st_errorf(err, "%s: config: expected before the first [variant]", where);
        snprintf(p->s->base_config, sizeof p->s->base_config, "%s", value);
        return config_load_file(&p->trial, value, err);
    }
    const char *k = strcmp(key, "seeds") ? key : "seed";
    if (!strcmp(k, "run_name") || !strcmp(k, "out_dir"))
        return st_errorf(err, "%s: %s: expected nothing, the sweep names its runs and their directory", where, k);
    if (strchr(value, ',')) return add_axis(p, k, value, where, err);
    SweepVariant *v = p->cur;
    if (check_key_once(v, k, where, err)) return -1;
    if (v->n_settings == SWEEP_MAX_ITEMS || strlen(value) >= sizeof v->settings[0].value)
        return st_errorf(err, "%s: expected at most %d settings of < %zu characters", where, SWEEP_MAX_ITEMS,
                         sizeof v->settings[0].value);
    if (config_set(&p->trial, k, value, where, err)) return -1;
    snprintf(v->settings[v->n_settings].key, sizeof v->settings[0].key, "%s", k);
    snprintf(v->settings[v->n_settings].value, sizeof v->settings[0].value, "%s", value);
    v->n_settings++;
    return 0;
}

static int grid_size(const SweepVariant *v) {
    int n = 1;
    for (int i = 0; i < v->n_axes; i++) n *= v->axes[i].n_values;
    return n;
}

int sweep_load(Sweep *s, const char *path, char *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len <= 6 || strcmp(base + len - 6, ".sweep") != 0 || len - 6 >= sizeof s->name)
        return st_errorf(err, "%s: expected a file named NAME.sweep", path);
    memcpy(s->name, base, len - 6);
    snprintf(s->dir, sizeof s->dir, "%.*s%s", (int)(base - path), path, s->name);
    char *text = config_read_file(path, err);
    if (!text) return -1;
    ParseCtx p = {.s = s, .cur = &s->global};
    config_defaults(&p.trial);
    int rc = config_parse_lines(text, path, parse_line, &p, err);
    free(text);
    if (rc) return -1;
    s->n_runs = 0;
    if (s->n_variants == 0) s->n_runs = grid_size(&s->global);
    for (int i = 0; i < s->n_variants; i++) s->n_runs += grid_size(&s->global) * grid_size(&s->variants[i]);
    /* every run must make a valid config, in a directory of its own: catch a bad combination, or two
     * runs whose names collide once made safe ("a/b" and "a_b"), before anything runs */
    char(*names)[256] = st_malloc((size_t)s->n_runs * sizeof *names);
    rc = 0;
    for (int i = 0; i < s->n_runs && rc == 0; i++) {
        TrainConfig cfg;
        rc = sweep_run_config(s, i, &cfg, names[i], sizeof names[i], err);
        for (int j = 0; j < i && rc == 0; j++)
            if (!strcmp(names[i], names[j]))
                rc = st_errorf(err, "%s: runs %d and %d are both named %s: they would share one directory", path,
                               j + 1, i + 1, names[i]);
    }
    free(names);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* runs */

/* appends "-keyvalue" to a run name, keeping it a safe directory name */
static void append_part(char *name, size_t size, const char *key, const char *value) {
    size_t n = strlen(name);
    snprintf(name + n, size - n, "%s%s%s", n ? "-" : "", key, value);
    for (char *c = name + n; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-') *c = '_';
}

static int apply_settings(const SweepVariant *v, TrainConfig *cfg, const char *path, char *err) {
    for (int i = 0; i < v->n_settings; i++)
        if (config_set(cfg, v->settings[i].key, v->settings[i].value, path, err)) return -1;
    return 0;
}

/* sets the values of grid point `index` of v's axes (last axis fastest) and names them */
static int apply_grid_point(const SweepVariant *v, int index, TrainConfig *cfg, const char *path, char *err) {
    for (int a = v->n_axes - 1; a >= 0; a--) { /* decode the mixed-radix index from the fastest axis */
        const SweepAxis *ax = &v->axes[a];
        int pick = index % ax->n_values;
        index /= ax->n_values;
        if (config_set(cfg, ax->key, ax->values[pick], path, err)) return -1;
    }
    return 0;
}

/* the name parts of grid point `index` of v's axes, in axis order */
static void name_grid_point(const SweepVariant *v, int index, char *name, size_t size) {
    int picks[SWEEP_MAX_AXES];
    for (int a = v->n_axes - 1; a >= 0; a--) {
        picks[a] = index % v->axes[a].n_values;
        index /= v->axes[a].n_values;
    }
    for (int a = 0; a < v->n_axes; a++) append_part(name, size, v->axes[a].key, v->axes[a].values[picks[a]]);
}

int sweep_run_config(const Sweep *s, int i, TrainConfig *cfg, char *name, size_t size, char *err) {
    /* variants may have grids of different sizes: find the variant that holds run i */
    int per_variant = grid_size(&s->global), first = 0, vi = -1;
    for (int k = 0; k < s->n_variants; k++) {
        int n = per_variant * grid_size(&s->variants[k]);
        if (i < first + n) {
            vi = k;
            break;
        }
        first += n;
    }
    const SweepVariant *v = vi >= 0 ? &s->variants[vi] : NULL;
    int local = i - first;
    int vgrid = v ? grid_size(v) : 1;
    int g_index = local / vgrid, v_index = local % vgrid;

    config_defaults(cfg);
    if (s->base_config[0] && config_load_file(cfg, s->base_config, err)) return -1;
    if (apply_settings(&s->global, cfg, s->path, err) || (v && apply_settings(v, cfg, s->path, err)) ||
        apply_grid_point(&s->global, g_index, cfg, s->path, err) || (v && apply_grid_point(v, v_index, cfg, s->path, err)))
        return -1;
    name[0] = 0;
    if (v) append_part(name, size, "", v->name);
    name_grid_point(&s->global, g_index, name, size);
    if (v) name_grid_point(v, v_index, name, size);
    if (!name[0]) snprintf(name, size, "%s", s->name);
    if (config_set(cfg, "run_name", name, s->path, err) || config_set(cfg, "out_dir", s->dir, s->path, err))
        return -1;
    if (config_validate(cfg, err)) {
        char inner[ST_ERR_LEN];
        snprintf(inner, sizeof inner, "%s", err);
        return st_errorf(err, "%s: run %s: %s", s->path, name, inner);
    }
    return 0;
}

static void run_dir_of(const TrainConfig *cfg, char *out, size_t size) {
    snprintf(out, size, "%s/%s", cfg->out_dir, cfg->run_name);
}

SweepRunState sweep_run_state(const TrainConfig *cfg) {
    char dir[2048], ckpt[2300], err[ST_ERR_LEN];
    struct stat st;
    run_dir_of(cfg, dir, sizeof dir);
    if (stat(dir, &st) != 0) return SWEEP_RUN_NEW;
    int64_t step;
    if (ckpt_latest(dir, ckpt, sizeof ckpt, err)) return SWEEP_RUN_EMPTY;
    /* a damaged latest checkpoint is not an empty run (restarting it would delete the earlier ones):
     * its resume fails, saying which checkpoint to resume from */
    if (ckpt_read_step(ckpt, &step, err)) return SWEEP_RUN_PARTIAL;
    return step >= cfg->steps ? SWEEP_RUN_DONE : SWEEP_RUN_PARTIAL;
}

int sweep_write_configs(const Sweep *s, char *err) {
    if (st_make_dirs(s->dir, err)) return -1;
    for (int i = 0; i < s->n_runs; i++) {
        TrainConfig cfg;
        char name[256], path[1600];
        if (sweep_run_config(s, i, &cfg, name, sizeof name, err)) return -1;
        snprintf(path, sizeof path, "%s/%s.conf", s->dir, name);
        FILE *f = fopen(path, "w");
        if (!f) return st_errorf(err, "%s: cannot create: %s", path, strerror(errno));
        fprintf(f, "# run %s of sweep %s (written by bin/sweep; edit the sweep file, not this)\n", name, s->path);
        int rc = config_write(&cfg, f, path, err);
        if (fclose(f) != 0 && rc == 0) rc = st_errorf(err, "%s: write failed: %s", path, strerror(errno));
        if (rc) return -1;
    }
    return 0;
}

void sweep_run_argv(const Sweep *s, const TrainConfig *cfg, SweepRunState state, const char *train_exe,
                    SweepCommand *cmd) {
    char dir[2048];
    run_dir_of(cfg, dir, sizeof dir);
    cmd->n = 0;
    snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "%s", train_exe);
    /* a resumed run reads the sweep's config, not its own config.txt, so a sweep file changed since
     * is an error of bin/train's (naming the key) rather than a silent finish at the old settings */
    if (state == SWEEP_RUN_PARTIAL) {
        snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "--resume");
        snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "%s", dir);
    }
    snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "--config");
    snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "%s/%s.conf", s->dir, cfg->run_name);
    if (state == SWEEP_RUN_EMPTY) snprintf(cmd->word[cmd->n++], sizeof cmd->word[0], "--overwrite");
}

void sweep_shell_quote(const char *word, char *out, size_t size) {
    size_t n = strlen(out);
    int safe = word[0] != 0;
    for (const char *c = word; *c; c++) safe &= isalnum((unsigned char)*c) || strchr("_./=:,+-@%", *c) != NULL;
    if (safe) {
        snprintf(out + n, size - n, "%s", word);
        return;
    }
    n += (size_t)snprintf(out + n, size - n, "'");
    for (const char *c = word; *c && n < size; c++)
        n += (size_t)snprintf(out + n, size - n, "%s", *c == '\'' ? "'\\''" : (char[2]){*c, 0});
    if (n < size) snprintf(out + n, size - n, "'");
}

void sweep_run_command(const Sweep *s, const TrainConfig *cfg, SweepRunState state, const char *train_exe, char *out,
                       size_t size) {
    SweepCommand cmd;
    sweep_run_argv(s, cfg, state, train_exe, &cmd);
    out[0] = 0;
    for (int i = 0; i < cmd.n; i++) {
        if (i) snprintf(out + strlen(out), size - strlen(out), " ");
        sweep_shell_quote(cmd.word[i], out, size);
    }
}

/* the commands of the unfinished runs, one per line (with as_resume, the command that resumes each
 * from its checkpoint); as_element quotes each whole line once more, as one word of a bash array (the
 * Slurm script evals it) */
static int emit_commands(const Sweep *s, FILE *f, int as_element, int as_resume, int *count, char *err) {
    *count = 0;
    for (int i = 0; i < s->n_runs; i++) {
        TrainConfig cfg;
        char name[256], cmd[4096], element[8192] = "  ";
        if (sweep_run_config(s, i, &cfg, name, sizeof name, err)) return -1;
        SweepRunState st = sweep_run_state(&cfg);
        if (st == SWEEP_RUN_DONE) continue;
        sweep_run_command(s, &cfg, as_resume ? SWEEP_RUN_PARTIAL : st, "bin/train", cmd, sizeof cmd);
        if (as_element) sweep_shell_quote(cmd, element, sizeof element);
        fprintf(f, "%s\n", as_element ? element : cmd);
        (*count)++;
    }
    return 0;
}

int sweep_emit_parallel(const Sweep *s, FILE *f, char *err) {
    int n;
    if (sweep_write_configs(s, err)) return -1;
    return emit_commands(s, f, 0, 0, &n, err);
}

/* the task part of the Slurm script: run the task's command with the time limit's SIGTERM passed on,
 * and queue the task again when bin/train stopped before its last step (exit 75) */
static const char SLURM_TASK[] =
    "cmd=${cmds[$SLURM_ARRAY_TASK_ID]}\n"
    "# a requeued task continues its run from the checkpoint its stop wrote\n"
    "[ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ] && cmd=${resumes[$SLURM_ARRAY_TASK_ID]}\n"
    "# the time limit's SIGTERM (--signal above) reaches this script: pass it on to bin/train\n"
    "trap 'kill -TERM $pid 2>/dev/null' TERM\n"
    "eval \"exec $cmd\" &\n"
    "pid=$!\n"
    "wait $pid; rc=$?\n"
    "# wait returns as soon as the trap has run: wait again for bin/train's own exit status\n"
    "while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done\n"
    "# 75: stopped before its last step, with a checkpoint: queue the task again, to resume\n"
    "[ $rc -eq 75 ] && scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
    "exit $rc\n";

int sweep_emit_slurm(const Sweep *s, FILE *f, char *err) {
    TrainConfig first;
    char name[256];
    if (sweep_write_configs(s, err) || sweep_run_config(s, 0, &first, name, sizeof name, err)) return -1;
    fprintf(f, "#!/bin/bash\n# Slurm job array for sweep %s, written by bin/sweep --emit slurm.\n"
               "# Submit from the repository root: sbatch this-file. Each array task runs one unfinished run;\n"
               "# a task stopped by its time limit is requeued and resumes; rerun bin/sweep --emit slurm after\n"
               "# a partial job to resume the rest.\n",
            s->path);
    /* --signal: SIGTERM to this script 120 s before the time limit, time for bin/train's checkpoint */
    fprintf(f, "#SBATCH --job-name=sinktrace-%s\n#SBATCH --output=%s/slurm-%%A_%%a.log\n#SBATCH --requeue\n"
               "#SBATCH --signal=B:TERM@120\n",
            s->name, s->dir);
    if (first.threads > 0) fprintf(f, "#SBATCH --cpus-per-task=%d\n", first.threads);
    /* the array line comes last, once the number of commands is known */
    char *body = NULL;
    size_t body_size = 0;
    FILE *mem = open_memstream(&body, &body_size);
    int n;
    int rc = emit_commands(s, mem, 1, 0, &n, err);
    if (rc == 0) fprintf(mem, ")\nresumes=(\n");
    if (rc == 0) rc = emit_commands(s, mem, 1, 1, &n, err);
    fclose(mem);
    if (rc == 0) {
        if (n == 0) fprintf(f, "# every run of this sweep is finished\nexit 0\n");
        else fprintf(f, "#SBATCH --array=0-%d\ncd \"$SLURM_SUBMIT_DIR\"\n%scmds=(\n%s)\n%s", n - 1,
                     first.threads > 0 ? "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n" : "", body, SLURM_TASK);
    }
    free(body);
    return rc;
}
