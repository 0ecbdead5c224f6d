package webapp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func serve(h http.Handler, method, target string) (*http.Response, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

var configRE = regexp.MustCompile(`(?s)<script type="application/json" id="threadline-app">(.*?)</script>`)

func pageConfigOf(t *testing.T, page string) map[string]any {
	t.Helper()
	m := configRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no threadline-app config in the page:\n%s", page)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("the config is not JSON: %v\n%s", err, m[1])
	}
	return cfg
}

// devToken stands in for the server's signing: it names the user it signed for.
func devToken(userID int64) (string, error) { return "token-for-" + strconv.FormatInt(userID, 10), nil }

func TestPageConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		target string
		want   map[string]any
	}{
		{"production", Config{}, "/app", map[string]any{"endpoint": "/query"}},
		{"production ignores as", Config{}, "/app?as=2", map[string]any{"endpoint": "/query"}},
		{"development, the sign-in screen", Config{DevToken: devToken, DemoUserID: 1}, "/app",
			map[string]any{"endpoint": "/query", "devSignIn": true, "directoryToken": "token-for-1"}},
		{"development, signed in", Config{DevToken: devToken, DemoUserID: 1}, "/app?as=2",
			map[string]any{"endpoint": "/query", "devSignIn": true, "token": "token-for-2"}},
		{"development, as not a user id", Config{DevToken: devToken, DemoUserID: 1}, "/app?as=-3",
			map[string]any{"endpoint": "/query", "devSignIn": true, "directoryToken": "token-for-1"}},
		{"another endpoint", Config{Endpoint: "https://api.example.com/query"}, "/app", map[string]any{"endpoint": "https://api.example.com/query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, page := serve(Handler(tc.cfg), "GET", tc.target)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if diff := cmp.Diff(tc.want, pageConfigOf(t, page)); diff != "" {
				t.Errorf("page config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPageHeaders(t *testing.T) {
	res, page := serve(Handler(Config{}), "GET", "/app")
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": csp,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if strings.Contains(csp, "unsafe") || !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "style-src 'self';") {
		t.Errorf("the CSP allows more than the app's own files: %s", csp)
	}
	// No inline script or style: only the JSON data block, and the bundle by content hash.
	if regexp.MustCompile(`<script>|<script (?:type="(?:text/javascript|module)")|<style|style=`).MatchString(page) {
		t.Errorf("the page has inline script or style:\n%s", page)
	}
	for _, name := range []string{"app.js", "app.css"} {
		url := regexp.MustCompile(`"(` + regexp.QuoteMeta(AssetsPrefix+name) + `\?v=[0-9a-f]{16})"`).FindStringSubmatch(page)
		if url == nil {
			t.Fatalf("the page does not link %s by its hash:\n%s", name, page)
		}
		res, body := serve(Handler(Config{}), "GET", url[1])
		if res.StatusCode != http.StatusOK || len(body) < 1000 || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: status %d, %d bytes, Cache-Control %q", url[1], res.StatusCode, len(body), res.Header.Get("Cache-Control"))
		}
		for _, host := range []string{"//unpkg.com", "//cdn.jsdelivr.net", "//cdnjs.cloudflare.com", "//esm.sh", "//fonts.googleapis.com"} {
			if strings.Contains(body, host) {
				t.Errorf("%s mentions %s: everything is bundled", name, host)
			}
		}
	}
}

func TestRoutes(t *testing.T) {
	h := Handler(Config{DevToken: devToken})
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/app", http.StatusOK},
		{"HEAD", "/app", http.StatusOK},
		{"POST", "/app", http.StatusMethodNotAllowed},
		{"GET", "/app/", http.StatusNotFound},
		{"POST", "/app/dev-token", http.StatusNotFound},
		{"GET", "/app/assets/app.js", http.StatusOK},
		{"GET", "/app/assets/THIRD_PARTY_LICENSES.txt", http.StatusOK},
		{"POST", "/app/assets/app.js", http.StatusMethodNotAllowed},
		{"GET", "/app/assets/nope.js", http.StatusNotFound},
		{"GET", "/", http.StatusNotFound},
	} {
		if res, _ := serve(h, tc.method, tc.target); res.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, res.StatusCode, tc.want)
		}
	}
}
