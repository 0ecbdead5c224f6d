package devstack

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PortInUseError reports that a service could not listen on its port because
// something else already does.
type PortInUseError struct {
	Service string // "postgres", "pgbouncer" or "redis"
	Port    int
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("devstack: %s: port %d on 127.0.0.1 is already in use by another process; choose another port or stop that process", e.Service, e.Port)
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on right now.
// Another process may take it before it is used; Start retries with another port
// when a port it picked itself turns out to be taken.
//
// The port is drawn at random from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), where the kernel never puts the source port of an
// outgoing connection or a listener on port 0: a server restarted on its port (a
// PostgreSQL, PgBouncer or Redis restart, an instance in a rolling restart) then finds it
// free unless another process's FreePort drew the same one. A port from the ephemeral range
// was taken that way within the second of a rolling restart, under a test run's load. Within a
// process no port is drawn twice: callers often draw several before binding any (a cluster's
// instances), and two of one cluster's ports once came out the same.
func FreePort() (int, error) {
	if lo, ok := ephemeralLow(); ok && lo-belowEphemeral >= 1024 {
		drawn.Lock()
		defer drawn.Unlock()
		for range 64 {
			p := lo - 1 - rand.IntN(belowEphemeral)
			if !drawn.ports[p] && portFree(p) {
				drawn.ports[p] = true
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devstack: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// belowEphemeral is how many ports under the ephemeral range FreePort draws from.
const belowEphemeral = 20000

// drawn holds the ports FreePort has returned in this process.
var drawn = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// ephemeralLow is the first port of the kernel's ephemeral range, if it can be read.
var ephemeralLow = sync.OnceValues(func() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
})

// portFree reports whether a listener could bind 127.0.0.1:port now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// lookBinary finds a server binary: first in the given directories, then on PATH.
func lookBinary(name string, dirs ...string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("devstack: cannot find %s (looked in %s and PATH); install it with ops/stack/install-deps.sh", name, strings.Join(dirs, ", "))
}

// postgresBinDirs lists PostgreSQL bin directories, PostgreSQL 15 first, then
// the other versions installed under /usr/lib/postgresql (Debian/Ubuntu), newest first.
func postgresBinDirs() []string {
	var dirs []string
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(matches, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, m := range matches {
		if strings.HasSuffix(m, "/15/bin") {
			dirs = append([]string{m}, dirs...)
		} else {
			dirs = append(dirs, m)
		}
	}
	return append(dirs, "/usr/pgsql-15/bin", "/usr/local/pgsql/bin")
}

func lookPostgres(name string) (string, error) { return lookBinary(name, postgresBinDirs()...) }
func lookPgBouncer() (string, error) {
	return lookBinary("pgbouncer", "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
}
func lookRedis(name string) (string, error) {
	return lookBinary(name, "/usr/bin", "/usr/local/bin")
}

// account is the OS user that PostgreSQL and PgBouncer run as. Both refuse to run
// as root, so when this process is root they run as the "postgres" system user;
// otherwise as the current user (cred == nil).
type account struct {
	name     string
	uid, gid int
	cred     *syscall.Credential
}

func serviceAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{name: "current user", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("devstack: running as root, so PostgreSQL and PgBouncer must run as the \"postgres\" system user, but it does not exist (%v); install PostgreSQL (ops/stack/install-deps.sh) or run as a normal user", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("devstack: user postgres has non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return &account{
		name: "postgres", uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
	}, nil
}

// chown gives path to the account (no-op when services run as the current user).
func (a *account) chown(path string) error {
	if a.cred == nil {
		return nil
	}
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// mkdirOwned creates dir (mode perm) and gives it to the account.
func (a *account) mkdirOwned(dir string, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return a.chown(dir)
}

// writeOwned writes a file readable only by the account.
func (a *account) writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return a.chown(path)
}

// ensureReachable makes sure the account can enter dir: it adds the
// execute-for-others bit to dir itself when needed (dir is the stack's own
// directory) and fails with a clear message when a parent directory blocks it.
func (a *account) ensureReachable(dir string) error {
	if a.cred == nil {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if !a.canEnter(fi) {
		if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("devstack: letting user %s enter %s: %w", a.name, dir, err)
		}
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		if !a.canEnter(fi) {
			return fmt.Errorf("devstack: PostgreSQL and PgBouncer run as user %s, who cannot enter %s (mode %v); put the stack directory elsewhere (for example under /tmp) or chmod o+x %s", a.name, p, fi.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (a *account) canEnter(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == a.uid:
		return perm&0o100 != 0
	case int(st.Gid) == a.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// procSpec describes a server process to start.
type procSpec struct {
	service string // for messages: "postgres", "pgbouncer", "redis"
	path    string
	args    []string
	env     []string // the whole environment; nil: this process's
	dir     string   // working directory; must be enterable by cred
	logPath string   // stdout and stderr are appended here
	cred    *syscall.Credential
	// detach puts the process in its own session so that it outlives this
	// process and its terminal; otherwise the process is killed (SIGKILL) when
	// this process dies, so a crashed test binary leaves nothing behind.
	detach bool
	// deathSig replaces SIGKILL as the signal sent when this process dies (not
	// detached): SIGTERM for a master process that must stop its workers.
	deathSig syscall.Signal
}

// proc is a started server process.
type proc struct {
	pid       int
	logPath   string
	logOffset int64 // size of the log before the process started

	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // its exit status, set before done is closed
}

// spawnThread runs functions on one OS thread that never exits. The parent-death
// signal (Pdeathsig) fires when the thread that forked the child exits, not the
// process, so children that must die with us are forked from this thread.
var spawnThread struct {
	once sync.Once
	fns  chan func()
}

func onSpawnThread(f func()) {
	spawnThread.once.Do(func() {
		spawnThread.fns = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for fn := range spawnThread.fns {
				fn()
			}
		}()
	})
	done := make(chan struct{})
	spawnThread.fns <- func() { f(); close(done) }
	<-done
}

// command prepares spec's command with its output appended to the log. The
// caller closes the returned log file once the command has started.
func command(spec procSpec) (*exec.Cmd, *os.File, *proc, error) {
	logf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("devstack: %s: %w", spec.service, err)
	}
	p := &proc{logPath: spec.logPath}
	if fi, err := logf.Stat(); err == nil {
		p.logOffset = fi.Size()
	}
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = spec.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	attr := &syscall.SysProcAttr{Credential: spec.cred}
	if spec.detach {
		attr.Setsid = true
	} else {
		attr.Pdeathsig = syscall.SIGKILL
		if spec.deathSig != 0 {
			attr.Pdeathsig = spec.deathSig
		}
	}
	cmd.SysProcAttr = attr
	return cmd, logf, p, nil
}

// startCmd starts cmd, from the spawn thread unless it is detached.
func startCmd(cmd *exec.Cmd, detach bool) error {
	if detach {
		return cmd.Start()
	}
	var err error
	onSpawnThread(func() { err = cmd.Start() })
	return err
}

var raiseFileLimit sync.Once

// keepRaisedFileLimit makes children inherit the file descriptor limit the Go
// runtime raised for this process (soft limit = hard limit) instead of the
// original soft limit, often 1024, which os/exec restores by default: PgBouncer
// needs a descriptor per client and is configured for max_client_conn=10000.
// Calling Setrlimit is what tells os/exec to stop restoring.
func keepRaisedFileLimit() {
	raiseFileLimit.Do(func() {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
			lim.Cur = lim.Max
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
	})
}

// startProc starts a server process and returns without waiting for it.
func startProc(spec procSpec) (*proc, error) {
	keepRaisedFileLimit()
	cmd, logf, p, err := command(spec)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if err := startCmd(cmd, spec.detach); err != nil {
		return nil, fmt.Errorf("devstack: starting %s: %w", spec.service, err)
	}
	p.pid = cmd.Process.Pid
	p.done = make(chan struct{})
	// Reap the child when it exits. If this process exits first, the child is
	// re-parented to init (detached) or killed (not detached).
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// runProc runs a short-lived command (initdb, redis-cli) to completion.
func runProc(spec procSpec) error {
	cmd, logf, p, err := command(spec)
	if err != nil {
		return err
	}
	err = startCmd(cmd, spec.detach)
	logf.Close()
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return fmt.Errorf("devstack: %s: %s %s: %w\n%s", spec.service, filepath.Base(spec.path), strings.Join(spec.args, " "), err, p.newLog())
	}
	return nil
}

// newLog returns what the process wrote to its log since it started (at most
// the last 4 KiB).
func (p *proc) newLog() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.logOffset {
		return ""
	}
	b = b[p.logOffset:]
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}

// processName returns the kernel's name for a live, non-zombie process, or ""
// if there is no such process.
func processName(pid int) string {
	comm, state := procStat(pid)
	if state == 'Z' || state == 'X' {
		return ""
	}
	return comm
}

// isZombie reports whether pid is a process that has exited but not been reaped.
func isZombie(pid int) bool {
	_, state := procStat(pid)
	return state == 'Z'
}

// procStat reads a process's name and state from /proc/<pid>/stat
// (state 0 if there is no such process).
func procStat(pid int) (comm string, state byte) {
	if pid <= 0 {
		return "", 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	// Format: pid (comm) state ...; comm may contain spaces and parentheses.
	open := bytes.IndexByte(stat, '(')
	closing := bytes.LastIndexByte(stat, ')')
	if open < 0 || closing < open || closing+2 >= len(stat) {
		return "", 0
	}
	return string(stat[open+1 : closing]), stat[closing+2]
}

// running reports whether pid is a live process named comm. Checking the name
// protects against signalling an unrelated process that reused a stale pid.
func running(pid int, comm string) bool {
	return pid > 0 && processName(pid) == comm
}

// stopPid sends the signals in turn, waiting up to each one's grace period for
// the process to exit; the last resort is SIGKILL.
func stopPid(pid int, comm string, steps ...stopStep) error {
	steps = append(steps, stopStep{syscall.SIGKILL, 10 * time.Second})
	for _, st := range steps {
		if !running(pid, comm) {
			return nil
		}
		if err := syscall.Kill(pid, st.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("devstack: signalling %s (pid %d): %w", comm, pid, err)
		}
		deadline := time.Now().Add(st.grace)
		for running(pid, comm) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if running(pid, comm) {
		return fmt.Errorf("devstack: %s (pid %d) did not exit", comm, pid)
	}
	return nil
}

type stopStep struct {
	sig   syscall.Signal
	grace time.Duration
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return pid
}

func writePid(path string, pid int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}
