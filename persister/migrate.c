/* migrate.c: versioned schema migrations, applied with a dedicated blocking
 * connection before the event loop starts. */
#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "persister.h"

#define MIGRATE_MAX_FILES 1000

typedef struct migration {
    int version;
    char *path;
} migration;

static int migration_cmp(const void *a, const void *b)
{
    const migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Version of a file named NNN_name.sql, or -1 for any other name. */
static int migration_version(const char *name)
{
    size_t n = strlen(name);
    if (n < 9 || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (!isdigit((unsigned char)name[i]))
            return -1;
    if (name[3] != '_')
        return -1;
    return (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    nt_buf b = NT_BUF_INIT(0);
    size_t n;
    do {
        (void)nt_buf_reserve(&b, 4096);
        n = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        nt_buf_commit(&b, n);
    } while (n > 0);
    int err = ferror(f);
    fclose(f);
    if (err) {
        nt_buf_free(&b);
        return NULL;
    }
    return nt_buf_detach(&b, NULL);
}

static size_t list_migrations(const char *dir, migration *out, size_t max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        nt_config_fatal("cannot open migrations directory %s (NATTER_MIGRATIONS_DIR): %s", dir,
                        strerror(errno));
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int v = migration_version(de->d_name);
        if (v < 0)
            continue;
        if (n == max)
            nt_config_fatal("too many migrations in %s (NATTER_MIGRATIONS_DIR)", dir);
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        out[n].version = v;
        out[n].path = nt_malloc(len);
        snprintf(out[n].path, len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    qsort(out, n, sizeof(*out), migration_cmp);
    for (size_t i = 1; i < n; i++)
        if (out[i].version == out[i - 1].version)
            nt_config_fatal("two migrations numbered %03d in %s (NATTER_MIGRATIONS_DIR)",
                            out[i].version, dir);
    return n;
}

/* Runs sql; on failure ends the process naming `what`. */
static void exec_or_die(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(r);
        nt_config_fatal("%s failed (NATTER_PG_URL): %s", what, msg);
    }
    PQclear(r);
}

static bool is_applied(PGconn *c, int version)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", version);
    const char *params[1] = { v };
    PGresult *r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(r);
        nt_config_fatal("reading schema_migrations failed (NATTER_PG_URL): %s", msg);
    }
    bool applied = PQntuples(r) > 0;
    PQclear(r);
    return applied;
}

static void apply(PGconn *c, const migration *m)
{
    char *sql = read_file(m->path);
    if (sql == NULL)
        nt_config_fatal("cannot read migration %s (NATTER_MIGRATIONS_DIR): %s", m->path,
                        strerror(errno));
    char what[600];
    snprintf(what, sizeof(what), "migration %s", m->path);
    exec_or_die(c, "BEGIN", what);
    exec_or_die(c, sql, what);
    char rec[128];
    snprintf(rec, sizeof(rec),
             "INSERT INTO schema_migrations (version, applied_at) VALUES (%d, now())", m->version);
    exec_or_die(c, rec, what);
    exec_or_die(c, "COMMIT", what);
    nt_free(sql);
    nt_info("applied migration %03d (%s)", m->version, m->path);
}

void ps_migrate(const char *conninfo, const char *dir)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(c);
        nt_config_fatal("cannot reach PostgreSQL (NATTER_PG_URL): %s", msg);
    }
    exec_or_die(c, "SET client_min_messages = warning", "session setup");
    char lock[96];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%d, -1)", PS_LOCK_KEY);
    exec_or_die(c, lock, "taking the migration lock");
    exec_or_die(c,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "creating schema_migrations");

    static migration list[MIGRATE_MAX_FILES];
    size_t n = list_migrations(dir, list, MIGRATE_MAX_FILES);
    if (n == 0)
        nt_config_fatal("no migrations found in %s (NATTER_MIGRATIONS_DIR)", dir);
    for (size_t i = 0; i < n; i++) {
        if (!is_applied(c, list[i].version))
            apply(c, &list[i]);
        nt_free(list[i].path);
    }
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%d, -1)", PS_LOCK_KEY);
    exec_or_die(c, lock, "releasing the migration lock");
    PQfinish(c);
}
