// Package loadtest holds the load scenarios that run against the real server binary and
// services: benchmarks only, started with -bench (without it, go test starts nothing here).
//
//	go test -run XXX -bench FanoutWebSocket -benchtime 200x -timeout 30m ./ops/loadtest
package loadtest
