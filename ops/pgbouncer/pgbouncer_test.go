// Package pgbouncer's tests check the PgBouncer configuration of docker-compose.yml:
// pgbouncer.ini, a template that docker-entrypoint.sh renders (its ${NAME} placeholders are
// listed at the top of the file), against what Threadline needs and against the private stack's
// own configuration (internal/devstack), whose settings must be the same.
package pgbouncer

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/devstack"
)

//go:embed pgbouncer.ini
var template string

// render returns the template with every ${NAME} outside comment lines replaced by vars[NAME],
// the reference docker-entrypoint.sh is checked against. It fails if the template names a
// placeholder that vars lacks, or vars holds a name the template does not use.
func render(vars map[string]string) (string, error) {
	var missing []string
	used := make(map[string]bool)
	lines := strings.SplitAfter(template, "\n")
	for i, line := range lines {
		if t := strings.TrimSpace(line); strings.HasPrefix(t, ";") || strings.HasPrefix(t, "#") {
			continue
		}
		lines[i] = os.Expand(line, func(name string) string {
			used[name] = true
			v, ok := vars[name]
			if !ok && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			return v
		})
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("the template needs values for %s", strings.Join(missing, ", "))
	}
	for name := range vars {
		if !used[name] {
			return "", fmt.Errorf("the template has no placeholder %s", name)
		}
	}
	return strings.Join(lines, ""), nil
}

// settings returns an INI file's settings as "[section] key" → value, comments left out.
func settings(ini string) map[string]string {
	out := map[string]string{}
	section := ""
	for _, line := range strings.Split(ini, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section+" "+strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func dockerVars(authFile string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR": "0.0.0.0", "LISTEN_PORT": "6432", "PG_HOST": "postgres", "PG_PORT": "5432",
		"AUTH_FILE": authFile, "ADMIN_USER": "threadline",
	}
}

// TestTemplate renders the template and checks the settings Threadline relies on: transaction
// pooling, the pool sizes, a short login retry, and no placeholder left.
func TestTemplate(t *testing.T) {
	out, err := render(dockerVars("/x/userlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := settings(out)
	for k, want := range map[string]string{
		"[databases] *":                         "host=postgres port=5432",
		"[pgbouncer] listen_port":               "6432",
		"[pgbouncer] auth_file":                 "/x/userlist.txt",
		"[pgbouncer] admin_users":               "threadline",
		"[pgbouncer] stats_users":               "threadline",
		"[pgbouncer] pool_mode":                 "transaction",
		"[pgbouncer] max_client_conn":           "10000",
		"[pgbouncer] default_pool_size":         "20",
		"[pgbouncer] min_pool_size":             "10",
		"[pgbouncer] reserve_pool_size":         "5",
		"[pgbouncer] max_db_connections":        "100",
		"[pgbouncer] server_idle_timeout":       "600",
		"[pgbouncer] server_login_retry":        "1",
		"[pgbouncer] ignore_startup_parameters": "extra_float_digits",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for k, v := range got {
		if strings.Contains(v, "$") {
			t.Errorf("unrendered placeholder left: %s = %s", k, v)
		}
	}
	if _, err := render(map[string]string{"LISTEN_PORT": "1"}); err == nil || !strings.Contains(err.Error(), "PG_PORT") {
		t.Errorf("missing values: got err %v, want one naming PG_PORT", err)
	}
}

// deploymentSettings name where a PgBouncer runs, its files and its users: the only settings in
// which the Docker configuration and the private stack's may differ.
var deploymentSettings = []string{
	"[databases] *", "[pgbouncer] listen_addr", "[pgbouncer] listen_port",
	"[pgbouncer] auth_file", "[pgbouncer] admin_users", "[pgbouncer] stats_users",
}

// disagreements lists the settings of a and b that differ, deployment settings aside; a
// setting only one of them has differs.
func disagreements(a, b map[string]string) []string {
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k+" only in the first")
		}
	}
	for k, vb := range b {
		va, ok := a[k]
		switch {
		case !ok:
			out = append(out, k+" only in the second")
		case va != vb && !slices.Contains(deploymentSettings, k):
			out = append(out, fmt.Sprintf("%s: %q and %q", k, va, vb))
		}
	}
	sort.Strings(out)
	return out
}

// TestDevstackAgrees checks that the private stack of make run, make bench and the tests
// (internal/devstack's pgbouncer.ini) pools as docker-compose.yml's PgBouncer does: the same
// settings with the same values, but for where each listens, its files and its users.
func TestDevstackAgrees(t *testing.T) {
	docker, err := render(dockerVars("/tmp/pgbouncer/userlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := devstack.PgBouncerConfig(56432, 55432, "/data/pgbouncer/userlist.txt", "threadline")
	if err != nil {
		t.Fatal(err)
	}
	if d := disagreements(settings(docker), settings(dev)); len(d) > 0 {
		t.Errorf("ops/pgbouncer/pgbouncer.ini and internal/devstack/pgbouncer.ini differ; change both together:\n%s", strings.Join(d, "\n"))
	}
}

func TestDisagreements(t *testing.T) {
	base := map[string]string{"[pgbouncer] pool_mode": "transaction", "[pgbouncer] listen_port": "6432"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for bk, bv := range base {
			m[bk] = bv
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, tc := range map[string]struct {
		other map[string]string
		want  []string
	}{
		"same":               {base, nil},
		"another port":       {with("[pgbouncer] listen_port", "56432"), nil},
		"another pool mode":  {with("[pgbouncer] pool_mode", "session"), []string{`[pgbouncer] pool_mode: "transaction" and "session"`}},
		"a setting added":    {with("[pgbouncer] server_login_retry", "15"), []string{"[pgbouncer] server_login_retry only in the second"}},
		"a setting left out": {with("[pgbouncer] pool_mode", ""), []string{"[pgbouncer] pool_mode only in the first"}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, disagreements(base, tc.other)); diff != "" {
				t.Errorf("disagreements (-want +got):\n%s", diff)
			}
		})
	}
}
