// Package pgbouncer embeds Threadline's PgBouncer configuration template,
// pgbouncer.ini, so that Go code (internal/localstack) renders the very file that
// is committed here instead of a copy.
//
// The template uses ${NAME} placeholders in its settings (see the comment at the
// top of pgbouncer.ini); comment lines are left alone. Render fills the
// placeholders in and refuses unknown or missing names, so a placeholder added to
// the file without a value cannot slip through unrendered.
package pgbouncer

import (
	_ "embed"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// Template is the text of ops/pgbouncer/pgbouncer.ini.
//
//go:embed pgbouncer.ini
var Template string

// Placeholders lists the names Template expects, sorted.
var Placeholders = []string{"ADMIN_USER", "AUTH_FILE", "LISTEN_ADDR", "LISTEN_PORT", "PG_HOST", "PG_PORT"}

// Render returns Template with every ${NAME} outside comment lines replaced by
// vars[NAME]. It fails if the template names a placeholder that vars lacks, or
// vars holds a name the template does not use.
func Render(vars map[string]string) (string, error) {
	var missing []string
	used := make(map[string]bool)
	lines := strings.SplitAfter(Template, "\n")
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
	out := strings.Join(lines, "")
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("pgbouncer: template needs values for %s", strings.Join(missing, ", "))
	}
	var unused []string
	for name := range vars {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return "", fmt.Errorf("pgbouncer: template has no placeholder for %s", strings.Join(unused, ", "))
	}
	return out, nil
}
