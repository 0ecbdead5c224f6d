package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

var pageConfigRE = regexp.MustCompile(`(?s)<script type="application/json" id="threadline-app">(.*?)</script>`)

type pageConfig struct {
	DevSignIn      bool   `json:"devSignIn"`
	DirectoryToken string `json:"directoryToken"`
	Token          string `json:"token"`
}

func appPageConfig(t *testing.T, s *apptest.Server, path string) (int, pageConfig, string) {
	t.Helper()
	status, body := s.Get(path)
	var cfg pageConfig
	if m := pageConfigRE.FindStringSubmatch(body); m != nil {
		if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	return status, cfg, body
}

// TestDevSignInOnlyInDevelopment checks where the web app is served and where its development
// sign-in exists: in development /app?as=<id> carries a working token for that user (and /app
// one for the demo user, to list users with); in production, even with WEB_APP_ENABLED, no page
// carries a token whatever its URL, and there is no token endpoint; without WEB_APP_ENABLED
// there is no app.
func TestDevSignInOnlyInDevelopment(t *testing.T) {
	testenv.SkipShort(t, "needs the services")
	t.Parallel()
	t.Run("development", func(t *testing.T) {
		database := testenv.NewDatabase(t)
		ids := dbtest.Users(t, dbtest.Open(t, database.DirectURL), "Alice", "Bob")
		s := apptest.Start(t, apptest.Options{Database: &database, Configure: func(c *app.Config) { c.Env, c.DemoUserID = "development", ids[1] }})
		for _, tc := range []struct {
			path string
			user int64
		}{{fmt.Sprintf("/app?as=%d", ids[0]), ids[0]}, {"/app", ids[1]}} {
			status, cfg, _ := appPageConfig(t, s, tc.path)
			tok := cfg.Token + cfg.DirectoryToken
			if status != http.StatusOK || !cfg.DevSignIn || tok == "" {
				t.Fatalf("GET %s: status %d, config %+v", tc.path, status, cfg)
			}
			c := &apptest.Client{URL: s.URL + "/query", Authorization: "Bearer " + tok}
			var me struct{ Me struct{ ID string } }
			if res := c.Must(t, `{ me { id } }`, nil); len(res.Errors) == 0 {
				_ = json.Unmarshal(res.Data, &me)
			}
			if me.Me.ID != apptest.ID(tc.user) {
				t.Errorf("GET %s: the page's token is user %q's, want %d", tc.path, me.Me.ID, tc.user)
			}
		}
	})
	t.Run("production with WEB_APP_ENABLED", func(t *testing.T) {
		s := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.WebAppEnabled = true }})
		for _, path := range []string{"/app", "/app?as=1", "/app?as=2&userId=2"} {
			status, cfg, body := appPageConfig(t, s, path)
			if status != http.StatusOK || cfg != (pageConfig{}) || strings.Contains(body, "eyJ") {
				t.Errorf("GET %s: status %d, config %+v; want the app without any token", path, status, cfg)
			}
		}
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			req, _ := http.NewRequest(method, s.URL+"/app/dev-token", strings.NewReader(`{"userId":1}`))
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("%s /app/dev-token: status %d, want 404", method, res.StatusCode)
			}
		}
	})
	t.Run("production", func(t *testing.T) {
		s := apptest.Start(t, apptest.Options{})
		if status, _ := s.Get("/app"); status != http.StatusNotFound {
			t.Errorf("GET /app: status %d, want 404 without WEB_APP_ENABLED", status)
		}
	})
}
