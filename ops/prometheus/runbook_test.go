package prometheus

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runbookSection is one alert's entry in ops/RUNBOOK.md: what it means, the dashboard panels
// to look at, what to do.
type runbookSection struct {
	alert, means, dashboard, do string
}

// runbookField matches the start of a section's paragraphs: **Means:**, **Dashboard:**, **Do:**.
var runbookField = regexp.MustCompile(`(?m)^\*\*(Means|Dashboard|Do):\*\*`)

// readRunbook returns the sections of RUNBOOK.md's "## Alerts" chapter, in their order.
func readRunbook(t *testing.T) []runbookSection {
	t.Helper()
	raw, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	_, chapter, ok := strings.Cut(string(raw), "\n## Alerts\n")
	if !ok {
		t.Fatalf("%s has no \"## Alerts\" chapter", runbookFile)
	}
	chapter, _, _ = strings.Cut(chapter, "\n## ")
	var out []runbookSection
	for i, part := range strings.Split(chapter, "\n### ") {
		if i == 0 {
			continue // the chapter's introduction
		}
		name, body, _ := strings.Cut(part, "\n")
		s := runbookSection{alert: strings.TrimSpace(name)}
		locs := runbookField.FindAllStringSubmatchIndex(body, -1)
		for j, loc := range locs {
			end := len(body)
			if j+1 < len(locs) {
				end = locs[j+1][0]
			}
			text := strings.TrimSpace(body[loc[1]:end])
			switch body[loc[2]:loc[3]] {
			case "Means":
				s.means = text
			case "Dashboard":
				s.dashboard = text
			case "Do":
				s.do = text
			}
		}
		out = append(out, s)
	}
	return out
}

// quotedPanel matches a panel's title as the runbook names it: in double quotes.
var quotedPanel = regexp.MustCompile(`"([^"]+)"`)

// TestRunbookCoversEveryAlert compares the alerts of alerts.yml with the sections of
// ops/RUNBOOK.md: one section per alert, none for an alert that does not exist, each saying
// what the alert means, which panels of the dashboard to look at (titles that the dashboard
// has) and what to do.
func TestRunbookCoversEveryAlert(t *testing.T) {
	var alerts []string
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	sections := readRunbook(t)
	var documented []string
	for _, s := range sections {
		documented = append(documented, s.alert)
	}
	slices.Sort(alerts)
	sorted := slices.Sorted(slices.Values(documented))
	if diff := cmp.Diff(alerts, sorted); diff != "" {
		t.Errorf("alerts of %s (-) against sections of %s (+):\n%s", alertsFile, runbookFile, diff)
	}
	if len(slices.Compact(sorted)) != len(documented) {
		t.Errorf("%s documents an alert twice: %v", runbookFile, documented)
	}

	var panels []string
	for _, p := range readDashboard(t).panels() {
		panels = append(panels, p.Title)
	}
	for _, s := range sections {
		t.Run(s.alert, func(t *testing.T) {
			if s.means == "" || s.dashboard == "" || s.do == "" {
				t.Errorf("want **Means:**, **Dashboard:** and **Do:** paragraphs, each with text: %+v", s)
			}
			named := quotedPanel.FindAllStringSubmatch(s.dashboard, -1)
			if len(named) == 0 {
				t.Errorf("**Dashboard:** names no panel in double quotes: %q", s.dashboard)
			}
			for _, m := range named {
				// A title may wrap over lines, which Markdown renders as spaces.
				title := strings.Join(strings.Fields(m[1]), " ")
				if !slices.Contains(panels, title) {
					t.Errorf("**Dashboard:** names %q, which the dashboard does not have (panels: %q)", title, panels)
				}
			}
		})
	}
}
