// Package reliability is the reliability suite of ephemeral: it proves with tests that the
// backends neither lose nor invent state. It has no API; everything is in its tests.
//
//   - model_test.go: model-based tests (pgregory.net/rapid). Random schedules of upserts,
//     touches, quiet touches (either some of several keys, in one TouchMany), removes,
//     conditional writes, clock moves and snapshots by several concurrent writers on several
//     tenants, with readers and mirrors that start at random points, are checked against a
//     plain reference model, on memstore, miniredis, a real Redis server and a Redis Cluster.
//   - fault_test.go: faults injected into a redis-server the test starts itself: connection
//     kills, a restart without persistence, FLUSHALL, and a server that is unreachable.
//   - linear_test.go, linmodel_test.go: linearizability, checked with
//     github.com/anishathalye/porcupine. Concurrent clients (each its own go-redis client) make
//     random upserts (plain, IfNew, IfExists, IfVersion), touches (some of several keys, in one
//     TouchMany), removes and gets on a few keys while their connections are killed, a node
//     sleeps (DEBUG SLEEP) and, between histories, a node restarts; every call is recorded with
//     its start, end and result. Each history is checked per key as the clients saw it (calls
//     of unknown outcome open-ended, possibly applied), matched to a reader's events, and
//     checked as a whole tenant once the events settle the unknown outcomes; a violation writes
//     porcupine's visualisation to a file the failure names. TestLinearizabilityMemstore,
//     TestLinearizabilityRedis, TestLinearizabilityCluster (3 masters) and
//     TestLinearizabilitySentinel run it on servers they start themselves;
//     TestLinearizabilityModels checks the models on histories of known verdict, and
//     TestLinearizabilityCheckerCatches shows that a stale read and a write applied twice are
//     found, and that lost replies are no violation.
//   - failover_test.go: a master of a Redis Cluster (three masters, one with a replica, started
//     by the test) dies; the writes to its slots succeed again once its replica has taken over
//     (within 30 s, where go-redis alone would wait for its 60 s reload of the slots), and a
//     reader opened before gets the next write.
//   - isolation_test.go: adversarial store IDs and tenants never share keys and keep every key
//     of a tenant in one hash slot; an abandoned tenant leaves no key behind.
//   - fuzz_test.go: fuzz targets for the key parsers the other packages do not fuzz yet.
//
// The environment selects the servers and the effort, so that a plain go test ./... stays
// short: EPHEMERAL_REDIS_ADDR and EPHEMERAL_REDIS_CLUSTER name a real server and a cluster,
// EPHEMERAL_RELIABILITY_CASES sets the number of model cases per backend,
// EPHEMERAL_FAULT_DURATION the traffic phase of the connection-kill test, and
// EPHEMERAL_LINEAR_DURATION the run of the linearizability test per target (1 s by default, in
// histories of at most 10 s). docs/RELIABILITY.md says which test proves which guarantee.
package reliability
