// Package reliability is the reliability suite of ephemeral: it proves with tests that the
// backends neither lose nor invent state. It has no API; everything is in its tests.
//
//   - model_test.go: model-based tests (pgregory.net/rapid). Random schedules of upserts,
//     touches, quiet touches, removes, conditional writes, clock moves and snapshots by several
//     concurrent writers on several tenants, with readers and mirrors that start at random
//     points, are checked against a plain reference model, on memstore, miniredis, a real Redis
//     server and a Redis Cluster.
//   - fault_test.go: faults injected into a redis-server the test starts itself: connection
//     kills, a restart without persistence, FLUSHALL, and a server that is unreachable.
//   - isolation_test.go: adversarial store IDs and tenants never share keys and keep every key
//     of a tenant in one hash slot; an abandoned tenant leaves no key behind.
//   - fuzz_test.go: fuzz targets for the key parsers the other packages do not fuzz yet.
//
// The environment selects the servers and the effort, so that a plain go test ./... stays
// short: EPHEMERAL_REDIS_ADDR and EPHEMERAL_REDIS_CLUSTER name a real server and a cluster,
// EPHEMERAL_RELIABILITY_CASES sets the number of model cases per backend, and
// EPHEMERAL_FAULT_DURATION the traffic phase of the connection-kill test. docs/RELIABILITY.md
// says which test proves which guarantee.
package reliability
