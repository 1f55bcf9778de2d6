// Package esdbserver is an embedded, single-node event store that speaks
// EventStoreDB's gRPC protocol (ServerFeatures, Gossip and Streams: Read,
// Append, Delete, Tombstone) well enough for the official Go client, storing
// events durably in Pebble. The behaviour follows shared/ESDB-PROTOCOL.md;
// persistent subscriptions, projections, users, ACLs and clustering are not
// implemented (BatchAppend answers Unimplemented and is not advertised).
//
// # Storage
//
// One Pebble database under Config.DataDir holds, per event, the record in
// $all order (key a<position>), the stream index (s<stream><revision> →
// position) and the idempotency index (i<stream><event id> → revision), and
// per stream a head (h<stream>: last revision, tombstone and soft-delete
// flags, interpreted metadata, a small Bloom filter of its event ids).
// Positions are a counter from 1; commit and prepare positions are equal.
//
// # Writes
//
// One writer goroutine serialises every append, delete and tombstone: it
// takes all queued requests, checks each against the current stream heads,
// assigns revisions and positions, writes them in one Pebble batch
// committed with fsync (group commit), then publishes the events to
// subscribers and answers the requests. A crash therefore loses no
// acknowledged write and never exposes part of a batch. The storage reads a
// request needs (stream head, first event id) are done beforehand on the
// request's own goroutine and reused by the writer when no write to the
// stream happened in between.
//
// # Reads and subscriptions
//
// Reads iterate Pebble directly and send hand-encoded ReadResp messages.
// Catch-up subscriptions register for live events first, read storage up to
// the head at registration, then follow the live queue; a subscriber more
// than 32 live events behind drops its queue and catches up from storage
// again, so none is ever dropped for being slow and none loses events.
//
// Memory is bounded: Pebble's memtables and a 64 MiB block cache, an LRU of
// 65,536 stream heads, and at most one commit group plus 32 events queued per
// subscriber.
package esdbserver
