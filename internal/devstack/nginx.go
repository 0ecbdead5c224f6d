package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NginxConfig describes a private nginx for Start: its http block comes from the caller, the
// rest (process model, pid file, error log, temporary files under Dir) from this package.
type NginxConfig struct {
	// Dir holds nginx.conf, the pid file (nginx.pid) and nginx's temporary files. Created if
	// missing.
	Dir string
	// ErrorLog is the error log's path; AccessLogs are the paths of the access logs HTTP names
	// (none: access logging is off). Start creates them for the account nginx runs as.
	ErrorLog   string
	AccessLogs []string
	// HTTP is the body of the http block: maps, upstreams, servers.
	HTTP string
	// Port is where HTTP's server listens on 127.0.0.1: Start waits until it accepts
	// connections there.
	Port int
	// Detach runs nginx (a master process and its workers) in a session of its own, outliving
	// this process (StopNginx stops it). Otherwise the master gets SIGTERM when this process
	// dies, and stops its workers. Either way it has a master, so that Reload can change the
	// configuration without dropping a connection.
	Detach bool
}

// Config renders nginx.conf.
func (c NginxConfig) Config() string {
	var b strings.Builder
	b.WriteString("# Written by internal/devstack: a private nginx, all of its files under its directory.\n")
	b.WriteString("daemon off;\n")
	b.WriteString("master_process on;\nworker_processes auto;\n")
	fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\n", nginxQuote(filepath.Join(c.Dir, "nginx.pid")), nginxQuote(c.ErrorLog))
	b.WriteString("events {\n    worker_connections 8192;\n}\n")
	b.WriteString("http {\n")
	tmp := filepath.Join(c.Dir, "tmp")
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", kind, nginxQuote(filepath.Join(tmp, kind)))
	}
	if len(c.AccessLogs) == 0 {
		// nginx's default would be a path under /var/log, not ours to write.
		b.WriteString("    access_log off;\n")
	}
	for _, line := range strings.Split(strings.TrimRight(c.HTTP, "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("    " + line + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nginxQuote quotes a path for nginx.conf.
func nginxQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// prepare writes nginx.conf and creates what nginx writes to, for the account it runs as.
func (c NginxConfig) prepare() (bin, conf string, acct *account, err error) {
	if c.Dir == "" || c.ErrorLog == "" {
		return "", "", nil, errors.New("devstack: NginxConfig needs Dir and ErrorLog")
	}
	if bin, err = lookBinary("nginx", "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"); err != nil {
		return "", "", nil, err
	}
	if acct, err = serviceAccount(); err != nil {
		return "", "", nil, err
	}
	if err := acct.mkdirOwned(c.Dir, 0o755); err != nil {
		return "", "", nil, err
	}
	if err := acct.ensureReachable(c.Dir); err != nil {
		return "", "", nil, err
	}
	if err := acct.mkdirOwned(filepath.Join(c.Dir, "tmp"), 0o700); err != nil {
		return "", "", nil, err
	}
	for _, log := range append([]string{c.ErrorLog}, c.AccessLogs...) {
		f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return "", "", nil, fmt.Errorf("devstack: nginx: %w", err)
		}
		f.Close()
		if err := acct.chown(log); err != nil {
			return "", "", nil, err
		}
	}
	conf = filepath.Join(c.Dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(c.Config()), 0o644); err != nil {
		return "", "", nil, fmt.Errorf("devstack: %w", err)
	}
	return bin, conf, acct, nil
}

// Check writes the configuration and has nginx test it (nginx -t), without starting it.
func (c NginxConfig) Check(ctx context.Context) error {
	bin, conf, acct, err := c.prepare()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "-t", "-q", "-p", c.Dir, "-c", conf, "-e", c.ErrorLog)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acct.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("devstack: nginx -t: %v\n%s\n%s", err, out, c.Config())
	}
	return nil
}

// Start writes the configuration and starts nginx, as the account PostgreSQL and PgBouncer run
// as (nginx would otherwise keep a root master process), and waits until it accepts
// connections on Port.
func (c NginxConfig) Start(ctx context.Context) (*Process, error) {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	bin, conf, acct, err := c.prepare()
	if err != nil {
		return nil, err
	}
	if !portFree(c.Port) {
		return nil, &PortInUseError{Service: "nginx", Port: c.Port}
	}
	p, err := startProc(procSpec{
		service: "nginx", path: bin, args: []string{"-p", c.Dir, "-c", conf, "-e", c.ErrorLog}, dir: c.Dir,
		logPath: c.ErrorLog, cred: acct.cred, detach: c.Detach, deathSig: syscall.SIGTERM,
	})
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p, "nginx", "nginx", c.Port, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr(c.Port))
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		stopPid(p.pid, "nginx", nginxStop...)
		return nil, err
	}
	return &Process{Pid: p.pid, Comm: "nginx", LogPath: c.ErrorLog, p: p}, nil
}

// nginxStop: SIGTERM is nginx's fast shutdown (the master stops its workers, which close
// their connections); SIGQUIT, the graceful one, would wait for every WebSocket to end.
var nginxStop = []stopStep{{syscall.SIGTERM, 10 * time.Second}}

// StopNginx stops the nginx started under dir (its pid file, dir/nginx.pid), possibly by another
// process. Nothing running is not an error.
func StopNginx(dir string) error {
	return StopPidFile(filepath.Join(dir, "nginx.pid"), "nginx", nginxStop[0].grace)
}

// Reload writes the configuration, has nginx test it, and sends SIGHUP to the master running
// under Dir (its pid file), which starts workers on the new configuration and then asks the old
// ones to stop accepting and to exit once their connections have ended: no request is dropped,
// and WebSocket connections go on through the old workers. Reload returns once every old worker
// has stopped accepting, so that every connection from then on is served on the new
// configuration.
func (c NginxConfig) Reload(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Check(ctx); err != nil {
		return err
	}
	master := RunningPid(filepath.Join(c.Dir, "nginx.pid"), "nginx")
	if master == 0 {
		return fmt.Errorf("devstack: nginx is not running under %s", c.Dir)
	}
	var old []int
	for pid := range childrenOf(master) {
		if !nginxShuttingDown(pid) {
			old = append(old, pid)
		}
	}
	if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
		return fmt.Errorf("devstack: reloading nginx: %w", err)
	}
	for {
		// A worker told to stop sets its title to "nginx: worker process is shutting down",
		// then closes its listening sockets; the pause after the last one covers that step.
		waiting := 0
		for _, pid := range old {
			if running(pid, "nginx") && !nginxShuttingDown(pid) {
				waiting++
			}
		}
		if waiting == 0 {
			time.Sleep(20 * time.Millisecond)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: nginx (pid %d): %d workers still accept on the old configuration: %w", master, waiting, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// nginxShuttingDown reports whether nginx process pid is a worker told to stop: it has closed,
// or is about to close, its listening sockets.
func nginxShuttingDown(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return err == nil && strings.Contains(string(b), "shutting down")
}

// childrenOf returns the pids of parent's child processes, from /proc.
func childrenOf(parent int) map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses; it ends at the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(parent) {
			out[pid] = true
		}
	}
	return out
}
