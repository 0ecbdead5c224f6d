//go:build linux

package loadtest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// isolateCPUs runs the system under test on half of the CPUs and the load generator on the
// other half until the test ends: every process this one started and their descendants
// (PostgreSQL and its backends, PgBouncer, Redis, the server) on the first half, this process on
// the second. A load generator sharing the cores of what it measures takes from it a share that
// grows with the load it offers: on two shared cores, offering twice the capacity in an open
// model cost the generator 0.13 of a core more than measuring the capacity did, and that came out
// of PostgreSQL's share, so the served rate it measured fell for a reason that is not the
// server's. With one CPU there is nothing to separate, and the test says so.
func isolateCPUs(t *testing.T) {
	t.Helper()
	var before unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	cpus := cpuList(&before)
	if len(cpus) < 2 {
		t.Logf("one CPU: the load generator shares it with the system under test")
		return
	}
	var sut, gen unix.CPUSet
	for i, c := range cpus {
		if i < len(cpus)/2 {
			sut.Set(c)
		} else {
			gen.Set(c)
		}
	}
	self := os.Getpid()
	t.Cleanup(func() {
		setAffinity(self, &before)
		for _, pid := range descendants(self) {
			setAffinity(pid, &before)
		}
	})
	// Twice: a process forked, or a thread started, by one not yet moved is moved the second
	// time; those started after that inherit the set of the one that started them.
	for range 2 {
		for _, pid := range descendants(self) {
			setAffinity(pid, &sut)
		}
		setAffinity(self, &gen)
	}
	t.Logf("system under test on CPUs %v, load generator on %v", cpuList(&sut), cpuList(&gen))
}

// setAffinity moves every thread of process pid to set. A thread or process that has exited
// meanwhile is not there to move.
func setAffinity(pid int, set *unix.CPUSet) {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return
	}
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, set)
		}
	}
}

// descendants lists the processes below root, children first.
func descendants(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	for queue := children[root]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// cpuList lists the CPUs in set.
func cpuList(set *unix.CPUSet) []int {
	var out []int
	for c := range len(set) * 64 {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
