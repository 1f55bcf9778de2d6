// Package postgres is Lark's edge to PostgreSQL: it runs a private cluster
// from the system's Postgres binaries when no external server is configured
// (StartCluster), opens connection pools (Connect) and applies the schema in
// ops/migrations (Migrate).
//
// The private cluster lives entirely under one directory:
//
//	dir/data          the Postgres data directory (initdb'd on first use)
//	dir/postgres.log  the server log
//	dir/start.lock    flock: exclusive while starting or stopping
//	dir/users.lock    flock: shared by every process using the cluster
//	dir/port          the port of the last start, tried first next time
//	dir/lark-started.pid  the postmaster Lark last started (Stop stops only that one)
//	dir/.s.PGSQL.N    the Unix socket, when dir's path is short enough
//
// Postgres refuses to run as root; when Lark runs as root the cluster runs as
// the "postgres" OS user, dir is owned by that user and every parent of dir
// must be traversable by it. The cluster listens only on 127.0.0.1 and on the
// socket inside dir, with trust authentication for the "postgres" role: any
// local user can connect to it, which is the trade-off of a zero-setup
// private cluster. Point LARK_DATABASE_URL at a managed server for anything
// shared.
package postgres
