package pgbouncer

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	vars := map[string]string{
		"LISTEN_ADDR": "127.0.0.1",
		"LISTEN_PORT": "6432",
		"PG_HOST":     "127.0.0.1",
		"PG_PORT":     "5432",
		"AUTH_FILE":   "/x/userlist.txt",
		"ADMIN_USER":  "threadline",
	}
	if len(vars) != len(Placeholders) {
		t.Fatalf("test covers %d placeholders, package lists %d", len(vars), len(Placeholders))
	}
	out, err := Render(vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"* = host=127.0.0.1 port=5432\n",
		"listen_port = 6432\n",
		"auth_file = /x/userlist.txt\n",
		"admin_users = threadline\n",
		"stats_users = threadline\n",
		"pool_mode = transaction\n",
		"max_client_conn = 10000\n",
		"default_pool_size = 20\n",
		"min_pool_size = 10\n",
		"reserve_pool_size = 5\n",
		"max_db_connections = 100\n",
		"server_idle_timeout = 600\n",
		"ignore_startup_parameters = extra_float_digits\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered config lacks %q", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), ";") && strings.Contains(line, "$") {
			t.Errorf("unrendered placeholder left: %q", line)
		}
	}
}

func TestRenderRejectsMissingAndUnknown(t *testing.T) {
	if _, err := Render(map[string]string{"LISTEN_PORT": "1"}); err == nil || !strings.Contains(err.Error(), "PG_PORT") {
		t.Errorf("missing values: got err %v, want one naming PG_PORT", err)
	}
	vars := map[string]string{"NOPE": "x"}
	for _, name := range Placeholders {
		vars[name] = "x"
	}
	if _, err := Render(vars); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("unknown value: got err %v, want one naming NOPE", err)
	}
}
