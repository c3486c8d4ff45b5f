/* migrate.h: applies persister/migrations/NNN_name.sql in order at start-up (blocking). */
#ifndef PS_MIGRATE_H
#define PS_MIGRATE_H

/* Connects to `conninfo`, takes a session advisory lock so concurrent persisters
 * migrate one at a time, and applies every file of `dir` not yet recorded in
 * schema_migrations, each in its own transaction. Before the loop only. Exits 2
 * through nt_config_fatal when PostgreSQL is unreachable or a migration fails. */
void ps_migrate(const char *conninfo, const char *dir);

#endif
