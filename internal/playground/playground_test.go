package playground

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var configRE = regexp.MustCompile(`(?s)<script type="application/json" id="threadline-config">(.*?)</script>`)

// pageJSON returns the raw JSON config of the page and its decoding.
func pageJSON(t *testing.T, page string) (string, map[string]any) {
	t.Helper()
	m := configRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no threadline-config script in page:\n%s", page)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, m[1])
	}
	return m[1], cfg
}

func TestPage(t *testing.T) {
	h := Handler(Config{
		Endpoint:       "/query",
		Title:          "Threadline dev",
		DefaultQuery:   "{ me { id name } }",
		DefaultHeaders: `{"Authorization":"Bearer abc.def.ghi"}`,
	})
	res := get(t, h, "GET", "/", nil)
	page := body(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Cache-Control":          "no-store",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	_, cfg := pageJSON(t, page)
	nonce, _ := cfg["styleNonce"].(string)
	if len(nonce) < 22 {
		t.Errorf("styleNonce = %q, want 128 random bits", nonce)
	}
	want := map[string]any{
		"endpoint":       "/query",
		"title":          "Threadline dev",
		"defaultQuery":   "{ me { id name } }",
		"defaultHeaders": "{\n  \"Authorization\": \"Bearer abc.def.ghi\"\n}",
		"styleNonce":     nonce,
	}
	for k, w := range want {
		if cfg[k] != w {
			t.Errorf("config[%q] = %q, want %q", k, cfg[k], w)
		}
	}
	if len(cfg) != len(want) {
		t.Errorf("config has keys %v, want those of %v", cfg, want)
	}

	csp := res.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, value := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self' 'nonce-" + nonce + "'",
		"connect-src":     "'self' ws: wss:",
		"img-src":         "'self' data:",
		"font-src":        "'self'",
		"object-src":      "'none'",
		"base-uri":        "'none'",
		"frame-ancestors": "'none'",
	} {
		if directives[name] != value {
			t.Errorf("CSP %s = %q, want %q (CSP: %s)", name, directives[name], value, csp)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", csp)
	}

	for _, s := range []string{
		"<title>Threadline dev</title>",
		`<script defer src="/playground/graphiql.js?v=`,
		`<link rel="stylesheet" href="/playground/graphiql.css?v=`,
		`<div id="graphiql">`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %q:\n%s", s, page)
		}
	}
	// No inline script: every <script> is either the JSON block or has a src.
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, `type="application/json"`) && !strings.Contains(tag, " src=") {
			t.Errorf("inline script %s", tag)
		}
	}
}

func TestPageDefaults(t *testing.T) {
	res := get(t, Handler(Config{}), "GET", "/", nil)
	page := body(t, res)
	raw, cfg := pageJSON(t, page)
	if cfg["endpoint"] != "/query" || cfg["title"] != "Threadline" {
		t.Errorf("config = %s, want endpoint /query and title Threadline", raw)
	}
	if _, ok := cfg["defaultHeaders"]; ok {
		t.Errorf("config = %s, want no defaultHeaders", raw)
	}
	if strings.Contains(page, "defaultHeaders") || strings.Contains(page, "Authorization") {
		t.Errorf("page mentions headers though none were configured:\n%s", page)
	}
}

func TestPageHeadersNotJSON(t *testing.T) {
	// Headers that are not JSON go to the editor as they are.
	const h = `Authorization: Bearer x`
	_, cfg := pageJSON(t, body(t, get(t, Handler(Config{DefaultHeaders: h}), "GET", "/", nil)))
	if cfg["defaultHeaders"] != h {
		t.Errorf("defaultHeaders = %q, want %q", cfg["defaultHeaders"], h)
	}
}

func TestPageEscaping(t *testing.T) {
	evil := `</script><script>alert(1)</script><!-- & "quotes" ' ` + "\u2028"
	h := Handler(Config{
		Endpoint:       "/query?x=</script>",
		Title:          "<b>" + evil,
		DefaultQuery:   "# " + evil + "\n{ __typename }",
		DefaultHeaders: `{"X":"` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`,
	})
	page := body(t, get(t, h, "GET", "/", nil))
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("page has %d <script tags, want 2:\n%s", n, page)
	}
	if strings.Contains(page, "alert(1)</script>") || strings.Contains(page, "<b>") || strings.Contains(page, "<!--") {
		t.Errorf("configuration leaked into the markup unescaped:\n%s", page)
	}
	_, cfg := pageJSON(t, page)
	if cfg["title"] != "<b>"+evil {
		t.Errorf("title = %q, want %q", cfg["title"], "<b>"+evil)
	}
	if cfg["defaultQuery"] != "# "+evil+"\n{ __typename }" {
		t.Errorf("defaultQuery = %q", cfg["defaultQuery"])
	}
	var headers map[string]string
	if err := json.Unmarshal([]byte(cfg["defaultHeaders"].(string)), &headers); err != nil || headers["X"] != evil {
		t.Errorf("defaultHeaders = %q (%v), want X = %q", cfg["defaultHeaders"], err, evil)
	}
}

func TestNonceIsPerRequest(t *testing.T) {
	h := Handler(Config{})
	a := get(t, h, "GET", "/", nil).Header.Get("Content-Security-Policy")
	b := get(t, h, "GET", "/", nil).Header.Get("Content-Security-Policy")
	if a == b {
		t.Errorf("two page views got the same CSP (and nonce): %s", a)
	}
}

func TestHead(t *testing.T) {
	h := Handler(Config{})
	for _, target := range []string{"/", "/playground/graphiql.js"} {
		res := get(t, h, "HEAD", target, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Length") == "" {
			t.Errorf("HEAD %s: status %d, Content-Length %q; want 200 with a length", target, res.StatusCode, res.Header.Get("Content-Length"))
		}
		if b := body(t, res); b != "" {
			t.Errorf("HEAD %s: body of %d bytes", target, len(b))
		}
	}
}

func TestAssets(t *testing.T) {
	h := Handler(Config{})
	page := body(t, get(t, h, "GET", "/", nil))
	links := regexp.MustCompile(`(?:src|href)="(/playground/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(links) != 2 {
		t.Fatalf("page links %d assets, want 2:\n%s", len(links), page)
	}
	wantType := map[string]string{
		".js":    "text/javascript; charset=utf-8",
		".css":   "text/css; charset=utf-8",
		".woff2": "font/woff2",
		".woff":  "font/woff",
	}
	var css string
	for _, l := range links {
		// html/template escapes nothing in these URLs but be safe about &amp;.
		target := strings.ReplaceAll(l[1], "&amp;", "&")
		ext := target[strings.LastIndex(target, "."):strings.Index(target, "?")]
		t.Run(target, func(t *testing.T) {
			res := get(t, h, "GET", target, nil)
			b := body(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != wantType[ext] {
				t.Errorf("Content-Type = %q, want %q", got, wantType[ext])
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control = %q, want immutable for the versioned URL", got)
			}
			if len(b) < 1000 {
				t.Errorf("body is %d bytes", len(b))
			}
			if ext == ".css" {
				css = b
			}

			// Revalidation by ETag.
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			res = get(t, h, "GET", target, map[string]string{"If-None-Match": etag})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d, want 304", res.StatusCode)
			}

			// gzip, decoding to the same bytes.
			res = get(t, h, "GET", target, map[string]string{"Accept-Encoding": "gzip, deflate, br"})
			if res.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding gzip: Content-Encoding = %q", res.Header.Get("Content-Encoding"))
			}
			if res.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary = %q", res.Header.Get("Vary"))
			}
			zr, err := gzip.NewReader(bytes.NewReader([]byte(body(t, res))))
			if err != nil {
				t.Fatal(err)
			}
			unzipped, _ := io.ReadAll(zr)
			if !bytes.Equal(unzipped, []byte(b)) {
				t.Error("gzip body does not decode to the plain body")
			}
			if etag2 := res.Header.Get("ETag"); etag2 == etag {
				t.Error("gzip and plain bodies share an ETag")
			} else if res := get(t, h, "GET", target, map[string]string{"If-None-Match": etag2}); res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match gzip ETag: status %d, want 304", res.StatusCode)
			}

			// A URL without the version is revalidated, not cached for a year.
			res = get(t, h, "GET", strings.Split(target, "?")[0], nil)
			if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("unversioned: status %d, Cache-Control %q; want 200, no-cache", res.StatusCode, res.Header.Get("Cache-Control"))
			}
		})
	}

	// Everything the stylesheet refers to is served from here.
	urls := regexp.MustCompile(`url\(([^)]*)\)`).FindAllStringSubmatch(css, -1)
	fonts := 0
	for _, u := range urls {
		ref := strings.Trim(u[1], `"'`)
		if strings.HasPrefix(ref, "data:image/") {
			continue // allowed by img-src data:
		}
		if strings.Contains(ref, ":") || strings.HasPrefix(ref, "/") {
			t.Errorf("stylesheet refers to %q, want a relative URL", ref)
			continue
		}
		fonts++
		ext := ref[strings.LastIndex(ref, "."):]
		res := get(t, h, "GET", "/playground/"+ref, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != wantType[ext] {
			t.Errorf("%s: status %d, Content-Type %q", ref, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control = %q, want immutable (the name is the content hash)", ref, got)
		}
	}
	if fonts == 0 {
		t.Error("stylesheet refers to no font file")
	}
}

func TestNoCDN(t *testing.T) {
	for _, name := range []string{"dist/graphiql.js", "dist/graphiql.css"} {
		b, err := dist.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// (The bundle does mention "jsdelivr" and "unpkg" in an error message
		// about React 15, hence the slashes.)
		for _, host := range []string{"//unpkg.com", "//cdn.jsdelivr.net", "//cdnjs.cloudflare.com", "//esm.sh", "//fonts.googleapis.com", "//fonts.gstatic.com"} {
			if bytes.Contains(b, []byte(host)) {
				t.Errorf("%s mentions %s", name, host)
			}
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := Handler(Config{})
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/nope", 404},
		{"GET", "/index.html", 404},
		{"GET", "/query", 404},
		{"GET", "/playground", 404},
		{"GET", "/playground/", 404},
		{"GET", "/playground/nope.js", 404},
		{"GET", "/playground/fonts", 404},
		{"GET", "/playground/fonts/", 404},
		{"GET", "/playground/../playground.go", 404},
		{"GET", "/playground/dist/graphiql.js", 404},
		{"POST", "/", 405},
		{"PUT", "/playground/graphiql.js", 405},
		{"POST", "/nope", 404},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			res := get(t, h, tc.method, tc.target, nil)
			if res.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", res.Header.Get("Allow"))
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

func TestMountedWithMux(t *testing.T) {
	h := Handler(Config{})
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+AssetsPrefix(), h)
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "graphql") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for target, want := range map[string]int{"/": 200, "/playground/graphiql.css": 200, "/query": 200, "/other": 404} {
		res, err := http.Get(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", target, res.StatusCode, want)
		}
	}
}
