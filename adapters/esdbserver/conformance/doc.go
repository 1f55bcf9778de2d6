// Package conformance holds the event-store conformance suite: tests that
// talk to an event store only through the official EventStoreDB Go client
// (github.com/EventStore/EventStore-Client-Go/v4/esdb), one test per
// behaviour described in ESDB-PROTOCOL.md, plus a race test, a kill -9 crash
// test and benchmarks against bare Pebble.
//
// By default every test starts the embedded server (adapters/esdbserver) in a
// temporary directory. With LARK_TEST_ESDB_URL set (for example
// esdb://localhost:2113?tls=false) the same tests run unchanged against a real
// EventStoreDB/KurrentDB node: every test writes to fresh, uuid-suffixed
// streams and tolerates foreign events in $all; tests that need the embedded
// server (the crash test, exact $all counts) skip with a reason.
package conformance
