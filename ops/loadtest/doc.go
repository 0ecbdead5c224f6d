// Package loadtest holds the load scenarios that run against the real server binary and
// services: benchmarks only, started with -bench (without it, go test starts nothing here).
//
//	go test -run XXX -bench FanoutWebSocket -benchtime 200x -timeout 30m ./ops/loadtest
//
// The package is also the HTTP load generator behind `make bench` (load.go): keep-alive
// HTTP/1.1 connections sending prebuilt request bytes (GraphQL bodies built once from
// graph/client's operations), latencies in HdrHistograms, with a closed model ([Closed]: N
// connections as fast as they are answered), an open model ([Open]: a constant arrival rate,
// each latency measured from the request's due time, so a slow server cannot hide its queue),
// many slow clients ([Clients]) and an idle probe ([Sequential]). Command cmd/bench runs the
// scenarios against server processes on a private stack and writes BENCHMARKS.md:
//
//	make bench                 # the full run, at most 15 minutes: BENCHMARKS.md and its charts
//	BENCH_QUICK=1 make bench   # the smoke run CI does, at most 3 minutes (.data-bench/BENCHMARKS-quick.md)
package loadtest
