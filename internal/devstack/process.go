package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Command is a long-running program for Spawn: a server of the stack's users (the application
// itself, several times over, behind a load balancer) that should be started, found again and
// stopped the way the stack's own services are.
type Command struct {
	// Name names it in messages.
	Name string
	// Path is the executable; Args its arguments, without the program name.
	Path string
	Args []string
	// Env is its whole environment; nil: this process's.
	Env []string
	// Dir is its working directory ("": this process's).
	Dir string
	// LogPath receives its standard output and error, appended. Required.
	LogPath string
	// PidFile, when set, records its pid, so that StopPidFile finds it from another process.
	PidFile string
	// Detach lets it outlive this process (in a session of its own), as Config.Detach does for
	// the services; otherwise it is killed when this process dies.
	Detach bool
}

// Process is a program started by Spawn. Its methods check the process's name in /proc before
// any signal, so a pid the kernel has given to another program is never signalled.
type Process struct {
	Pid int
	// Comm is the kernel's name of it: the executable's base name, cut to 15 bytes.
	Comm    string
	LogPath string

	p *proc
}

// Spawn starts c and returns without waiting for it to be ready: the caller knows what ready
// means for its program.
func Spawn(c Command) (*Process, error) {
	if c.Path == "" || c.LogPath == "" {
		return nil, errors.New("devstack: Spawn needs Command.Path and Command.LogPath")
	}
	name := c.Name
	if name == "" {
		name = filepath.Base(c.Path)
	}
	p, err := startProc(procSpec{
		service: name, path: c.Path, args: c.Args, env: c.Env, dir: c.Dir,
		logPath: c.LogPath, detach: c.Detach,
	})
	if err != nil {
		return nil, err
	}
	if c.PidFile != "" {
		if err := writePid(c.PidFile, p.pid); err != nil {
			stopPid(p.pid, commOf(c.Path))
			return nil, err
		}
	}
	return &Process{Pid: p.pid, Comm: commOf(c.Path), LogPath: c.LogPath, p: p}, nil
}

// commOf is the name the kernel gives a process running the executable at path.
func commOf(path string) string {
	base := filepath.Base(path)
	if len(base) > 15 {
		base = base[:15]
	}
	return base
}

// Done is closed once the process has exited; Err then tells how.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// Err is the process's exit status once Done is closed (nil: it exited 0), and nil before.
func (p *Process) Err() error {
	select {
	case <-p.p.done:
		return p.p.waitErr
	default:
		return nil
	}
}

// Signal sends sig to the process if it still runs.
func (p *Process) Signal(sig syscall.Signal) error {
	if !running(p.Pid, p.Comm) {
		return nil
	}
	if err := syscall.Kill(p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("devstack: signalling %s (pid %d): %w", p.Comm, p.Pid, err)
	}
	return nil
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then kills it.
func (p *Process) Stop(grace time.Duration) error {
	err := stopPid(p.Pid, p.Comm, stopStep{syscall.SIGTERM, grace})
	<-p.p.done
	return err
}

// NewLog returns what the process has written to its log (at most the last 4 KiB).
func (p *Process) NewLog() string { return p.p.newLog() }

// RunningPid returns the pid recorded in pidFile if a process named comm runs under it, else 0.
func RunningPid(pidFile, comm string) int {
	if pid := readPid(pidFile); running(pid, comm) {
		return pid
	}
	return 0
}

// StopPidFile stops the process whose pid pidFile records, if one named comm runs under it
// (SIGTERM, then SIGKILL after grace), and removes the file. Nothing running is not an error.
func StopPidFile(pidFile, comm string, grace time.Duration) error {
	if pid := RunningPid(pidFile, comm); pid != 0 {
		if err := stopPid(pid, comm, stopStep{syscall.SIGTERM, grace}); err != nil {
			return err
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}
